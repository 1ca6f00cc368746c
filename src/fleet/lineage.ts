/**
 * Lineages through the store: the node that obtained one publishes its files; every other node writes them into
 * its own certbot layout (archive/<id>/certN.pem..., live/<id>/ relative links, a renewal config) so the rest of
 * autossl (the issuer's find, status, the install) sees an ordinary lineage. The renewal stays with the node that
 * ordered it: a lineage written here gets `autorenew = False`, and a newer one published by any node replaces it.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import type { Lineage as LineageFiles } from '../certbot/lineage.js';
import { readLineage } from '../certbot/lineage.js';
import { readLineageFiles } from '../issuer/issuer.js';
import type { FleetLineageRow, FleetStore } from '../store/store.js';
import type { FleetSettings } from './config.js';
import { openKey, sealKey } from './keys.js';

/** Publishes a lineage this node holds (after an order or a renewal); an older one never replaces a newer. */
export async function publishLineage(fleet: FleetStore, settings: FleetSettings, files: LineageFiles): Promise<FleetLineageRow> {
  const l = readLineageFiles({ id: files.name, certPath: files.cert, chainPath: files.chain, fullchainPath: files.fullchain, keyPath: files.privkey });
  const read = (f: string): string => fs.readFileSync(f, 'utf8');
  const row: FleetLineageRow = { id: l.id, names: l.names, serial: l.serial, notAfter: l.notAfter.getTime(), cert: read(files.cert), chain: read(files.chain), fullchain: read(files.fullchain), key: sealKey(read(files.privkey), settings.keyFile), node: settings.node, at: Date.now() };
  await fleet.putLineage(row);
  return row;
}

/** The serial of the lineage this node holds, or null. */
export function localSerial(config: AutoSslConfig, id: string): string | null {
  try {
    const files = readLineage(config.certbot.configDir, id);
    if (!files) return null;
    return readLineageFiles({ id, certPath: files.cert, chainPath: files.chain, fullchainPath: files.fullchain, keyPath: files.privkey }).serial;
  } catch {
    return null;
  }
}

/**
 * Writes a published lineage as the next version of this node's lineage `id` (a new one when there is none):
 * archive files first (key 0600), then each live link replaced by rename, so nginx never reads half a lineage.
 */
export async function writeLineage(config: AutoSslConfig, settings: FleetSettings, row: FleetLineageRow): Promise<LineageFiles> {
  if (!/^[A-Za-z0-9._-]+$/.test(row.id) || row.id.startsWith('.')) throw new Error(`invalid lineage id ${JSON.stringify(row.id).slice(0, 80)}`);
  const key = openKey(row.key, settings.keyFile);
  const base = path.resolve(config.certbot.configDir);
  const archive = path.join(base, 'archive', row.id);
  const live = path.join(base, 'live', row.id);
  await fsp.mkdir(archive, { recursive: true, mode: 0o700 });
  await fsp.mkdir(live, { recursive: true, mode: 0o755 });
  const versions = (await fsp.readdir(archive)).map((f) => /^cert(\d+)\.pem$/.exec(f)?.[1]).filter(Boolean).map(Number);
  const n = Math.max(0, ...versions) + 1;
  const parts: Array<[string, string, number]> = [['cert', row.cert, 0o644], ['chain', row.chain, 0o644], ['fullchain', row.fullchain, 0o644], ['privkey', key, 0o600]];
  for (const [name, text, mode] of parts) {
    const file = path.join(archive, `${name}${n}.pem`);
    await fsp.writeFile(file, text, { mode, flag: 'wx' });
    await fsp.chmod(file, mode);
  }
  for (const [name] of parts) {
    const link = path.join(live, `${name}.pem`);
    const temp = `${link}.fleet-${process.pid}`;
    await fsp.rm(temp, { force: true });
    await fsp.symlink(path.join('..', '..', 'archive', row.id, `${name}${n}.pem`), temp);
    await fsp.rename(temp, link);
  }
  const conf = path.join(base, 'renewal', `${row.id}.conf`);
  if (!fs.existsSync(conf)) {
    await fsp.mkdir(path.dirname(conf), { recursive: true, mode: 0o755 });
    await fsp.writeFile(conf, [
      `# Written by autossl's fleet node ${settings.node}: published by node ${row.node}, which renews it (the other nodes install what it publishes).`,
      `archive_dir = ${archive}`, `cert = ${live}/cert.pem`, `privkey = ${live}/privkey.pem`, `chain = ${live}/chain.pem`, `fullchain = ${live}/fullchain.pem`,
      '', '[renewalparams]', 'autorenew = False', '',
    ].join('\n'), { mode: 0o644 });
  }
  return readLineage(config.certbot.configDir, row.id)!;
}
