/**
 * What is served, not only what was issued: for every configured name, the server block nginx picks for it over
 * TLS must point at a certificate that covers the name and is its lineage's current one (`live/<name>/`, not an old
 * copy in `archive/`). `--probe` also connects with the name as SNI and compares the serial nginx presents.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { covers, readCertificateQuick, normalizeSerial } from '../issuer/certificate.js';
import type { CertificateRef, Installer } from '../installer/installer.js';
import { servedSerial } from '../stages/verify-tls.js';
import type { StatusRow } from './status.js';

const DAY = 86_400_000;

/** A name nginx matches a wildcard with (SNI cannot be "*.x"). */
function sampleOf(name: string): string {
  return name.startsWith('*.') ? `autossl-check${name.slice(1)}` : name;
}

interface ServedCert {
  file: string;
  line: number;
  path: string;
  names: string[];
  serial: string;
  notAfter: number;
  /** The lineage whose live/ the path is in, or whose archive/ it is an old copy from. */
  lineage?: string;
  current: boolean;
}

/** The certificate files a block names (Installer.servedFiles), read. */
function certificatesOf(
  refs: readonly CertificateRef[],
  live: string,
  archive: string,
): Array<ServedCert | { error: string; file: string; line: number; path: string }> {
  const out: Array<ServedCert | { error: string; file: string; line: number; path: string }> = [];
  for (const d of refs) {
    const p = d.path;
    try {
      const info = readCertificateQuick(p);
      const inLive = p.startsWith(live) ? p.slice(live.length).split(path.sep)[0] : undefined;
      const inArchive = p.startsWith(archive) ? p.slice(archive.length).split(path.sep)[0] : undefined;
      out.push({
        file: d.file,
        line: d.line,
        path: p,
        names: info.names,
        serial: normalizeSerial(info.serial),
        notAfter: info.notAfter.getTime(),
        lineage: inLive ?? inArchive,
        current: !inArchive,
      });
    } catch (error) {
      out.push({
        error: fs.existsSync(p) ? `cannot be read (${(error as Error).message.split('\n')[0]})` : 'does not exist',
        file: d.file,
        line: d.line,
        path: p,
      });
    }
  }
  return out;
}

function row(name: string, fields: Partial<StatusRow> & Pick<StatusRow, 'state'>, now: number): StatusRow {
  return {
    lineage: '',
    domain: name,
    names: [name],
    notAfter: null,
    daysLeft: null,
    renewFrom: null,
    lastError: null,
    consecutiveFailures: 0,
    vhosts: [],
    serial: null,
    ...fields,
    ...(fields.notAfter ? { daysLeft: Math.floor(((Date.parse(fields.notAfter) - now) / DAY) * 10) / 10 } : {}),
  };
}

/** A `mismatch` row for every configured name that is not served with a certificate covering it. */
export async function servedRows<C>(
  config: AutoSslConfig,
  installer: Installer<C>,
  snapshot: C,
  now: number,
  probe: boolean,
): Promise<{ mismatches: StatusRow[]; probes: Map<string, StatusRow['probe']> }> {
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const archive = path.resolve(config.certbot.configDir, 'archive') + path.sep;
  const mismatches: StatusRow[] = [];
  const probes = new Map<string, StatusRow['probe']>();
  // a config nginx itself would refuse says nothing reliable about what is served: say that, not "not served"
  const broken = installer.configErrors(snapshot)[0];
  if (broken !== undefined) {
    for (const site of config.sites) {
      for (const name of [site.domain, ...site.aliases]) {
        mismatches.push(
          row(
            name,
            {
              state: 'mismatch',
              lastError: {
                code: 'NGINX_PARSE_ERROR',
                message: `what nginx serves for ${name} is unknown: the config cannot be read (${broken}); fix it, then run status again`,
                at: null,
              },
            },
            now,
          ),
        );
      }
    }
    return { mismatches, probes };
  }
  for (const site of config.sites) {
    for (const name of [site.domain, ...site.aliases]) {
      const servedBy = installer.servedFiles(snapshot, sampleOf(name));
      const block = servedBy.block;
      if (!block) {
        mismatches.push(
          row(
            name,
            {
              state: 'mismatch',
              lastError: { code: 'NOT_SERVED', message: `no server block serves ${name} over TLS (autossl issue ${site.domain} installs it)`, at: null },
            },
            now,
          ),
        );
        continue;
      }
      const certs = certificatesOf(servedBy.certificates, live, archive);
      const readable = certs.filter((c): c is ServedCert => 'serial' in c);
      const coverer = readable.find((c) => covers(c.names, name));
      const at = `${block.file}:${block.line}`;
      let problem: string | null = null;
      if (!certs.length) problem = `${at} serves ${name} over TLS without an ssl_certificate of its own`;
      else if (!coverer) {
        const c = certs[0]!;
        problem =
          'error' in c
            ? `${at} points at ${c.path} (${c.file}:${c.line}), which ${c.error}`
            : `${at} serves ${name} with ${c.path} (${c.file}:${c.line}), which covers ${c.names.join(', ')}, not ${name}`;
      } else if (!coverer.current)
        problem = `${at} points at ${coverer.path} (${coverer.file}:${coverer.line}), an old copy of lineage ${coverer.lineage}, not its current certificate in live/${coverer.lineage}/`;
      let served: StatusRow['probe'];
      if (probe) {
        const address = servedBy.endpoint?.host ?? '127.0.0.1';
        const port = servedBy.endpoint?.port ?? config.nginx.httpsPort;
        try {
          const got = await servedSerial(address, port, sampleOf(name), 3000);
          served = { address: `${address}:${port}`, serial: got, ok: coverer !== undefined && got === coverer.serial };
        } catch (error) {
          served = { address: `${address}:${port}`, serial: null, ok: false, error: (error as Error).message };
        }
        probes.set(name, served);
      }
      if (!problem && served && !served.ok) {
        problem = served.serial
          ? `${served.address} presents serial ${served.serial} for ${name}, but ${at} points at ${coverer!.path} (serial ${coverer!.serial}): nginx has not loaded it (reload it)`
          : `no TLS answer for ${name} at ${served.address}: ${served.error}`;
      }
      if (problem) {
        mismatches.push(
          row(
            name,
            {
              state: 'mismatch',
              lineage: coverer?.lineage ?? readable[0]?.lineage ?? '',
              vhosts: [at],
              serial: coverer?.serial ?? null,
              notAfter: coverer ? new Date(coverer.notAfter).toISOString() : null,
              lastError: { code: served && !served.ok && !served.serial ? 'TLS_PROBE_FAILED' : 'CERT_MISMATCH', message: problem, at: null },
              ...(served ? { probe: served } : {}),
            },
            now,
          ),
        );
      }
    }
  }
  return { mismatches, probes };
}

/**
 * A lineage is `ok` only where it is served: a name of it that nginx sends (SNI) to a TLS block whose certificate
 * does not cover it (the block was re-pointed at another name's certificate, as a wildcard block shared by two
 * issued names was) makes its row a mismatch, whatever its dates say. Names no TLS block serves, and blocks whose
 * certificate path holds a variable, say nothing here.
 */
export function markUnservedLineages<C>(config: AutoSslConfig, installer: Installer<C>, snapshot: C, rows: StatusRow[]): void {
  if (installer.configErrors(snapshot).length) return;
  const live = path.resolve(config.certbot.configDir, 'live') + path.sep;
  const archive = path.resolve(config.certbot.configDir, 'archive') + path.sep;
  for (const r of rows) {
    if (!r.lineage || r.state === 'expired' || r.state === 'mismatch' || r.state === 'missing') continue;
    for (const name of r.names) {
      const servedBy = installer.servedFiles(snapshot, sampleOf(name));
      const block = servedBy.block;
      if (!block || servedBy.variable) continue;
      const certs = certificatesOf(servedBy.certificates, live, archive).filter((c): c is ServedCert => 'serial' in c);
      if (certs.some((c) => covers(c.names, name))) continue;
      r.state = 'mismatch';
      r.lastError = {
        code: 'CERT_MISMATCH',
        message: `${`${block.file}:${block.line}`} serves ${name} ${certs.length ? `with ${certs[0]!.path}, which covers ${certs[0]!.names.join(', ')}, not ${name}` : 'over TLS without a readable certificate'}`,
        at: null,
      };
      r.vhosts = [...new Set([...r.vhosts, `${block.file}:${block.line}`])];
      break;
    }
  }
}
