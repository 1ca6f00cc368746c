/**
 * Edits of one server block are serialized across processes and within one: a lock per block, not per name. Two
 * runs for two names of one block (`server_name sb.test other.test;`, a `*.wild.test` block) each planned on the
 * block as it was and the second re-pointed it away from the first's certificate. Whoever holds a block's lock
 * plans (reading the files again), orders, installs and verifies; the next one plans on that result.
 *
 * A block is named by its file and its server_names (sorted): stable while autossl edits it (its offset is not),
 * and shared by the port-80 block and the TLS twin the HTTPS edit adds beside it, which are one site. The locks
 * are the store's (its Locker): a store several nodes share brings locks they share.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import type { AutoSslConfig } from '../config/schema.js';
import type { HeldLock, Locker } from '../store/locker.js';
import { locateServers } from './edit.js';
import type { NginxTree, ServerBlock } from './tree.js';

/** The lock key of a block: `block-<hash>` (the lock file's name under stateDir/locks with the built-in Locker). */
export function blockLockKey(block: ServerBlock): string {
  let file = block.file;
  try {
    file = fs.realpathSync(block.file);
  } catch {
    // a file that vanished: its name still tells the block apart
  }
  const key = crypto
    .createHash('sha256')
    .update(`${file}\0${[...new Set(block.names)].sort().join(' ')}`)
    .digest('hex')
    .slice(0, 20);
  return `block-${key}`;
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
export async function lockBlocks(locker: Locker, config: AutoSslConfig, tree: NginxTree, names: readonly string[], vhostFile?: string): Promise<HeldLock> {
  const keys = [...new Set(blocksOf(tree, names, vhostFile).map(blockLockKey))].sort();
  const held: HeldLock[] = [];
  try {
    for (const key of keys)
      held.push(
        await locker.lock(key, config.certbot.timeoutMs * 3 + config.nginx.lockTimeoutMs, `A server block serving ${names.join(', ')} (another run edits it)`),
      );
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
