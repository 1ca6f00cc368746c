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
import { isPlainHttp } from '../nginx/listen.js';
import { argValues, childDirectives, lineColumn } from '../nginx/parse.js';
import type { NginxTree, ServerBlock } from '../nginx/tree.js';
import { serverView } from '../nginx/view.js';
import { servedSerial } from '../stages/verify-tls.js';
import type { StatusRow } from './status.js';

/** Clock ticks per second of /proc/<pid>/stat's start time (USER_HZ: 100 on every Linux build that matters). */
const USER_HZ = 100;
/** /proc's start times are whole ticks after a boot time in whole seconds: closer than this is "not sure". */
const SLACK_MS = 2000;

/** The pid file nginx writes: the main config's `pid`, else Debian's and the usual compiled default. */
function pidFile(tree: NginxTree): string {
  const main = tree.files.get(tree.mainFile);
  const pid = main
    ? childDirectives(main, 'pid')
        .map((d) => argValues(d)[0])
        .find(Boolean)
    : undefined;
  if (pid) return path.isAbsolute(pid) ? pid : path.join(tree.prefix, pid);
  return '/run/nginx.pid';
}

/** When the newest of nginx's worker processes started (epoch ms): every certificate it serves was read before. */
export function nginxLoadedAt(tree: NginxTree): number | null {
  try {
    const master = Number(fs.readFileSync(pidFile(tree), 'utf8').trim());
    if (!Number.isInteger(master) || master <= 1) return null;
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!btime) return null;
    let newest: number | null = null;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from its last ")"
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== master) continue;
      const started = (btime + Number(fields[19]) / USER_HZ) * 1000;
      if (newest === null || started > newest) newest = started;
    }
    return newest;
  } catch {
    return null;
  }
}

interface Candidate {
  lineage: string;
  name: string;
  block: ServerBlock;
  at: string;
}

/** A name of the block that nginx picks it for over TLS and the lineage covers (a wildcard as a sample name). */
function probeName(tree: NginxTree, block: ServerBlock, certNames: readonly string[]): string | null {
  for (const raw of block.names) {
    if (raw.startsWith('~') || raw === '_' || raw === '' || raw.endsWith('.*') || raw.startsWith('.')) continue;
    const name = raw.startsWith('*.') ? `autossl-check${raw.slice(1)}` : raw.toLowerCase();
    if (covers(certNames, name) && tree.findServers(name).https[0] === block) return name;
  }
  return null;
}

/**
 * Marks (or adds) a `mismatch` row for every lineage whose current certificate nginx does not serve. `rows` are
 * status's rows (a lineage's own row is the one marked); `skip` holds names already reported as not served.
 */
export async function markUnloaded(config: AutoSslConfig, tree: NginxTree, rows: StatusRow[], skip: ReadonlySet<string>): Promise<StatusRow[]> {
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const loadedAt = nginxLoadedAt(tree);
  const candidates = new Map<string, Candidate>();
  const current = new Map<string, { serial: string; names: string[]; notAfter: number; written: number }>();
  for (const block of tree.servers) {
    if (!block.listens.some((l) => l.ssl && !l.unix && !isPlainHttp(l))) continue;
    for (const d of serverView(block).directives) {
      if (d.name !== 'ssl_certificate' || !d.args[0] || d.args[0].includes('$')) continue;
      const p = path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0]);
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
      const name = probeName(tree, block, cert.names);
      if (!name || skip.has(name)) continue;
      candidates.set(lineage, { lineage, name, block, at: `${block.file}:${lineColumn(block.config.source, block.directive.start).line}` });
    }
  }
  const added: StatusRow[] = [];
  const list = [...candidates.values()];
  // a few handshakes at a time: a server with thousands of lineages renewed by hand is asked in bounded steps
  for (let i = 0; i < list.length; i += 16) {
    await Promise.all(
      list.slice(i, i + 16).map(async (c) => {
        const cert = current.get(c.lineage)!;
        const tls = c.block.listens.find((l) => l.ssl && !l.unix && !isPlainHttp(l))!;
        const address = tls.host === '*' ? '127.0.0.1' : tls.host === '[::]' ? '::1' : tls.host.replace(/^\[|\]$/g, '');
        const port = tls.port ?? config.nginx.httpsPort;
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
