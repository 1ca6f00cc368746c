/**
 * Edits of one server block are serialized across processes and within one: a lock per block, not per name. Two
 * runs for two names of one block (`server_name sb.test other.test;`, a `*.wild.test` block) each planned on the
 * block as it was and the second re-pointed it away from the first's certificate. Whoever holds a block's lock
 * plans (reading the files again), orders, installs and verifies; the next one plans on that result.
 *
 * A block is named by its file and its server_names (sorted): stable while autossl edits it (its offset is not),
 * and shared by the port-80 block and the TLS twin the HTTPS edit adds beside it, which are one site.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { acquireLock, type HeldLock } from '../lock.js';
import { locateServers } from './edit.js';
import type { NginxTree, ServerBlock } from './tree.js';

export function blockLockFile(config: AutoSslConfig, block: ServerBlock): string {
  let file = block.file;
  try {
    file = fs.realpathSync(block.file);
  } catch {
    // a file that vanished: its name still tells the block apart
  }
  const key = crypto.createHash('sha256').update(`${file}\0${[...new Set(block.names)].sort().join(' ')}`).digest('hex').slice(0, 20);
  return path.join(config.stateDir, 'locks', `block-${key}.lock`);
}

/** The blocks that serve (or will serve) `names`: each name's TLS block, and its port-80 block. */
export function blocksOf(tree: NginxTree, names: readonly string[], vhostFile?: string): ServerBlock[] {
  const out = new Set<ServerBlock>();
  for (const n of names) {
    try {
      const located = locateServers(tree, [n], { vhostFile });
      for (const b of [located.https.get(n), located.http.get(n)]) if (b) out.add(b);
    } catch {
      // planning reports what is wrong with the name or the tree
    }
  }
  return [...out];
}

/**
 * Takes the locks of the blocks serving `names`, in one order (two runs never wait for each other crosswise).
 * Held for a whole run, across a certbot order: the wait allows for one.
 */
export async function lockBlocks(config: AutoSslConfig, tree: NginxTree, names: readonly string[], vhostFile?: string): Promise<HeldLock> {
  const files = [...new Set(blocksOf(tree, names, vhostFile).map((b) => blockLockFile(config, b)))].sort();
  const held: HeldLock[] = [];
  try {
    for (const file of files) held.push(await acquireLock(file, { timeoutMs: config.certbot.timeoutMs * 3 + config.nginx.lockTimeoutMs, what: `A server block serving ${names.join(', ')} (another run edits it)` }));
  } catch (error) {
    for (const h of held.reverse()) await h.release();
    throw error;
  }
  return {
    async release() {
      for (const h of held.reverse()) await h.release();
    },
  };
}
