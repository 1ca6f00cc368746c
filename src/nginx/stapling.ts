/**
 * A leftover of the OCSP era: `ssl_stapling on` for a certificate without an OCSP responder URL. Let's Encrypt
 * stopped OCSP in 2025, so its certificates have none, and nginx then logs "ssl_stapling ignored, no OCSP responder
 * URL in the certificate" on every start and reload. `status` lists each such block; autossl itself never writes
 * ssl_stapling (the TLS editor adds only ssl_certificate/ssl_certificate_key and listens).
 *
 * Effective value: the server block's own `ssl_stapling` (or one in a snippet it includes), else the http
 * context's (nginx.conf's http block, or a file it includes at http level such as conf.d/ssl.conf). An
 * `ssl_stapling_responder` set for the block gives nginx a URL: no warning then.
 */
import fs from 'node:fs';
import path from 'node:path';
import { argValues, childDirectives, lineColumn, type Directive } from './parse.js';
import { expandInclude, type NginxTree } from './tree.js';
import { serverView } from './view.js';
import { memoByStat } from '../fsutil.js';

export interface StaplingWarning {
  code: 'STAPLING_WITHOUT_OCSP';
  /** The server block: file and line. */
  file: string;
  line: number;
  serverNames: string[];
  certificate: string;
  /** Where `ssl_stapling on` is written (the block's own, or the http context's). */
  staplingAt: string;
  message: string;
}

/** id-ad-ocsp (1.3.6.1.5.5.7.48.1) as DER: only an Authority Information Access OCSP entry carries it. */
const ID_AD_OCSP = Buffer.from([0x06, 0x08, 0x2b, 0x06, 0x01, 0x05, 0x05, 0x07, 0x30, 0x01]);

/** Whether the first certificate in a PEM file names an OCSP responder; null when it cannot be read. */
export const hasOcspUrl = memoByStat<boolean>((file, st) => {
  if (st.size > 1024 * 1024) return null;
  const b64 = /-----BEGIN CERTIFICATE-----([\s\S]+?)-----END CERTIFICATE-----/.exec(fs.readFileSync(file, 'latin1'))?.[1];
  return b64 ? Buffer.from(b64.replace(/\s+/g, ''), 'base64').includes(ID_AD_OCSP) : null;
});

function where(file: string, source: string, d: Directive): string {
  return `${file}:${lineColumn(source, d.start).line}`;
}

/** The last `name` directive of the http context (nginx.conf's http block and the files it includes at that level). */
function httpLevel(tree: NginxTree, name: string): { value: string; at: string } | null {
  const main = tree.files.get(tree.mainFile);
  if (!main) return null;
  let found: { value: string; at: string } | null = null;
  for (const http of childDirectives(main, 'http')) {
    for (const d of childDirectives(http)) {
      if (d.name === name) found = { value: argValues(d)[0] ?? '', at: where(tree.mainFile, main.source, d) };
      if (d.name !== 'include') continue;
      const target = argValues(d)[0];
      if (!target) continue;
      for (const f of expandInclude(path.isAbsolute(target) ? target : path.join(tree.prefix, target))) {
        const cfg = tree.files.get(f);
        for (const inner of cfg ? childDirectives(cfg, name) : []) found = { value: argValues(inner)[0] ?? '', at: where(f, cfg!.source, inner) };
      }
    }
  }
  return found;
}

/** Every TLS server block whose effective `ssl_stapling on` meets a certificate without an OCSP URL. */
export function staplingWithoutOcsp(tree: NginxTree): StaplingWarning[] {
  const out: StaplingWarning[] = [];
  const http = httpLevel(tree, 'ssl_stapling');
  const httpResponder = httpLevel(tree, 'ssl_stapling_responder');
  for (const server of tree.servers) {
    const view = serverView(server);
    if (!view.tls && !view.directives.some((d) => d.name === 'ssl_certificate')) continue;
    const own = view.directives.filter((d) => d.name === 'ssl_stapling').pop();
    const stapling = own ? { value: own.args[0] ?? '', at: `${own.file}:${own.line}` } : http;
    if (!stapling || stapling.value.toLowerCase() !== 'on') continue;
    const responder = view.directives.filter((d) => d.name === 'ssl_stapling_responder').pop()?.args[0] ?? httpResponder?.value;
    if (responder) continue;
    for (const d of view.directives) {
      if (d.name !== 'ssl_certificate' || !d.args[0] || d.args[0].includes('$') || d.args[0].startsWith('data:')) continue;
      const cert = path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0]);
      if (hasOcspUrl(cert) !== false) continue;
      out.push({
        code: 'STAPLING_WITHOUT_OCSP',
        file: view.file,
        line: view.line,
        serverNames: [...view.serverNames],
        certificate: cert,
        staplingAt: stapling.at,
        message: `ssl_stapling on (${stapling.at}) for ${cert}, which has no OCSP responder URL: nginx logs "ssl_stapling ignored" on every reload. Remove ssl_stapling (Let's Encrypt ended OCSP in 2025).`,
      });
    }
  }
  return out;
}
