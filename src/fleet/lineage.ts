/**
 * Lineages through the store: the node that obtained one publishes its files; every other node keeps them through
 * its issuer (Issuer.keep: certbot writes them into its own layout) so the rest of autossl (find, status, the
 * install) sees an ordinary lineage. A newer one published by any node replaces it.
 */
import fs from 'node:fs';
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { lineageFiles, readLineageFiles, type Issuer } from '../issuer/issuer.js';
import type { DomainContext } from '../pipeline/context.js';
import type { FleetLineageRow, FleetStore } from '../store/store.js';
import type { FleetSettings } from './config.js';
import { openKey, sealKey } from './keys.js';

/** A lineage's files as the pipeline carries them (ctx.lineage). */
export type LineageFiles = NonNullable<DomainContext['lineage']>;

/** Publishes a lineage this node holds (after an order or a renewal); an older one never replaces a newer. */
export async function publishLineage(fleet: FleetStore, settings: FleetSettings, files: LineageFiles): Promise<FleetLineageRow> {
  const l = readLineageFiles({ id: files.name, certPath: files.cert, chainPath: files.chain, fullchainPath: files.fullchain, keyPath: files.privkey });
  const read = (f: string): string => fs.readFileSync(f, 'utf8');
  const row: FleetLineageRow = {
    id: l.id,
    names: l.names,
    serial: l.serial,
    notAfter: l.notAfter.getTime(),
    cert: read(files.cert),
    chain: read(files.chain),
    fullchain: read(files.fullchain),
    key: sealKey(read(files.privkey), settings.keyFile),
    node: settings.node,
    at: Date.now(),
  };
  await fleet.putLineage(row);
  return row;
}

/** The serial of the lineage this node holds, or null. */
export async function localSerial(issuer: Issuer, id: string): Promise<string | null> {
  return (await issuer.find(id).catch(() => null))?.serial ?? null;
}

/** Keeps a published lineage here (its key decrypted with fleet.keyFile). */
export async function writeLineage(config: AutoSslConfig, issuer: Issuer, settings: FleetSettings, row: FleetLineageRow): Promise<LineageFiles> {
  if (!issuer.keep)
    throw new AutoSslError(
      'CONFIG_INVALID',
      `The issuer ${issuer.name} cannot keep a certificate another node obtained: a fleet needs one that can (certbot).`,
    );
  const kept = await issuer.keep(row.id, {
    cert: row.cert,
    chain: row.chain,
    fullchain: row.fullchain,
    key: openKey(row.key, settings.keyFile),
    note: `fleet node ${settings.node} keeps what node ${row.node} published (it renews it)`,
  });
  void config;
  return lineageFiles(kept);
}
