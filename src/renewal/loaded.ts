/**
 * Whether nginx serves the certificate each lineage has now, config or not. `certbot renew` without autossl's
 * deploy hook writes a new certificate into live/ that nginx never loads (it reads certificates when it starts and
 * reloads only), and the files alone look fine. Every lineage a TLS server block points at is checked:
 *  - cheaply first: nginx's master reads every certificate, then starts its workers; a certificate file older than
 *    the newest worker was loaded;
 *  - the others (all of them when nginx's workers cannot be found) are asked over TLS, one name per lineage as
 *    SNI: a served serial other than the lineage's current one is a `mismatch`.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { covers, normalizeSerial, readCertificateQuick } from '../issuer/certificate.js';
import type { BlockInfo, Installer, TlsBlock } from '../installer/installer.js';
import { servedSerial } from '../stages/verify-tls.js';
import type { StatusRow } from './status.js';

/** /proc's start times are whole ticks after a boot time in whole seconds: closer than this is "not sure". */
const SLACK_MS = 2000;

interface Candidate {
  lineage: string;
  name: string;
  endpoint: TlsBlock['endpoint'];
  at: string;
}

/** The same block: where it is, its names and its sockets (two blocks on one line differ in those, or nginx ignores one). */
function sameBlock(a: BlockInfo | undefined, b: BlockInfo): boolean {
  return (
    a !== undefined &&
    a.file === b.file &&
    a.line === b.line &&
    a.serverNames.join(' ') === b.serverNames.join(' ') &&
    a.sockets.join(' ') === b.sockets.join(' ')
  );
}

/** A name of the block that nginx picks it for over TLS and the lineage covers (a wildcard as a sample name). */
function probeName<C>(installer: Installer<C>, snapshot: C, block: BlockInfo, certNames: readonly string[]): string | null {
  for (const raw of block.serverNames) {
    if (raw.startsWith('~') || raw === '_' || raw === '' || raw.endsWith('.*') || raw.startsWith('.')) continue;
    const name = raw.startsWith('*.') ? `autossl-check${raw.slice(1)}` : raw.toLowerCase();
    if (!covers(certNames, name)) continue;
    if (sameBlock(installer.blocksFor(snapshot, name).https[0], block)) return name;
  }
  return null;
}

/**
 * Marks (or adds) a `mismatch` row for every lineage whose current certificate nginx does not serve. `rows` are
 * status's rows (a lineage's own row is the one marked); `skip` holds names already reported as not served.
 */
export async function markUnloaded<C>(
  config: AutoSslConfig,
  installer: Installer<C>,
  snapshot: C,
  rows: StatusRow[],
  skip: ReadonlySet<string>,
): Promise<StatusRow[]> {
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const loadedAt = installer.loadedAt(snapshot);
  const candidates = new Map<string, Candidate>();
  const current = new Map<string, { serial: string; names: string[]; notAfter: number; written: number }>();
  for (const { block, endpoint, certificates } of installer.tlsBlocks(snapshot)) {
    for (const { path: p } of certificates) {
      if (!p.startsWith(live)) continue;
      const lineage = p.slice(live.length).split(path.sep)[0]!;
      if (candidates.has(lineage)) continue;
      let cert = current.get(lineage);
      if (!cert) {
        try {
          const file = path.join(live, lineage, 'cert.pem');
          const info = readCertificateQuick(file);
          cert = { serial: normalizeSerial(info.serial), names: info.names, notAfter: info.notAfter.getTime(), written: fs.statSync(file).mtimeMs };
          current.set(lineage, cert);
        } catch {
          continue; // a missing or unreadable lineage is status's `missing` already
        }
      }
      if (loadedAt !== null && cert.written < loadedAt - SLACK_MS) continue; // read by the running workers
      const name = probeName(installer, snapshot, block, cert.names);
      if (!name || skip.has(name)) continue;
      candidates.set(lineage, { lineage, name, endpoint, at: `${block.file}:${block.line}` });
    }
  }
  const added: StatusRow[] = [];
  const list = [...candidates.values()];
  // a few handshakes at a time: a server with thousands of lineages renewed by hand is asked in bounded steps
  for (let i = 0; i < list.length; i += 16) {
    await Promise.all(
      list.slice(i, i + 16).map(async (c) => {
        const cert = current.get(c.lineage)!;
        const { host: address, port } = c.endpoint;
        let got: string | null;
        try {
          got = await servedSerial(address, port, c.name, 3000);
        } catch {
          return; // no TLS answer at all: served.ts's probe and the verify stage say why; nothing to compare here
        }
        if (got === cert.serial) return;
        const message = `${address}:${port} presents serial ${got} for ${c.name}, but lineage ${c.lineage}'s certificate is serial ${cert.serial} (written ${new Date(cert.written).toISOString()}), which ${c.at} points at: nginx has not loaded it. Reload nginx; "autossl setup" installs certbot's deploy hook, which does after each renewal`;
        const own = rows.find((r) => r.lineage === c.lineage && r.names.length);
        const fields = {
          state: 'mismatch' as const,
          serial: cert.serial,
          lastError: { code: 'CERT_NOT_LOADED', message, at: null },
          probe: { address: `${address}:${port}`, serial: got, ok: false },
        };
        if (own) Object.assign(own, fields);
        else
          added.push({
            lineage: c.lineage,
            domain: c.name,
            names: cert.names,
            notAfter: new Date(cert.notAfter).toISOString(),
            daysLeft: null,
            renewFrom: null,
            consecutiveFailures: 0,
            vhosts: [c.at],
            ...fields,
          });
      }),
    );
  }
  return added;
}
