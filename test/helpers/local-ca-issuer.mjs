/**
 * A test issuer: signs with a local CA (openssl) instead of running certbot, plugged in through the config:
 *   "issuer": { "module": ".../local-ca-issuer.mjs", "options": { "dir": DIR, "caCert": PEM, "caKey": PEM } }
 * Before signing it proves the HTTP-01 solver autossl set up works: a token written into the webroot must come
 * back over http://127.0.0.1/.well-known/acme-challenge/ for every name (what a CA would fetch). Plain JS, so the
 * CLI (dist) loads it as well as the tests.
 */
import { execFileSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';

/** GET http://127.0.0.1<path> with a Host header (fetch drops Host). */
const get = (host, urlPath) => new Promise((resolve) => {
  http.get({ host: '127.0.0.1', port: 80, path: urlPath, headers: { Host: host } }, (res) => {
    let body = '';
    res.setEncoding('utf8').on('data', (c) => (body += c)).on('end', () => resolve(body));
  }).on('error', (e) => resolve(`unreachable: ${e.message}`));
});

export default function localCaIssuer({ dir, caCert, caKey }, api) {
  const files = (id) => ({ id, certPath: path.join(dir, id, 'cert.pem'), chainPath: path.join(dir, id, 'chain.pem'), fullchainPath: path.join(dir, id, 'fullchain.pem'), keyPath: path.join(dir, id, 'privkey.pem') });
  const find = async (id) => (fs.existsSync(files(id).certPath) ? api.readLineage(files(id)) : null);

  async function proveHttp01(webroot, names) {
    const token = crypto.randomBytes(16).toString('base64url');
    const file = path.join(webroot, '.well-known', 'acme-challenge', token);
    fs.writeFileSync(file, token);
    try {
      for (const name of names) {
        const body = await get(name, `/.well-known/acme-challenge/${token}`);
        if (body !== token) throw new Error(`HTTP-01 for ${name}: the token was not served (got ${JSON.stringify(body.slice(0, 80))})`);
      }
    } finally {
      fs.rmSync(file, { force: true });
    }
  }

  async function sign(id, names, challenge) {
    if (challenge?.type === 'http-01') await proveHttp01(challenge.webroot, names);
    const tmp = fs.mkdtempSync(path.join(dir, '.order-'));
    const ssl = (...args) => execFileSync('openssl', args, { stdio: 'pipe' });
    ssl('req', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', `${tmp}/privkey.pem`, '-out', `${tmp}/csr.pem`, '-subj', `/CN=${names[0]}`);
    fs.writeFileSync(`${tmp}/ext`, `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}\nauthorityKeyIdentifier=keyid\n`);
    ssl('x509', '-req', '-in', `${tmp}/csr.pem`, '-CA', caCert, '-CAkey', caKey, '-set_serial', `0x${crypto.randomBytes(16).toString('hex')}`, '-days', '90', '-out', `${tmp}/cert.pem`, '-extfile', `${tmp}/ext`);
    fs.copyFileSync(caCert, `${tmp}/chain.pem`);
    fs.writeFileSync(`${tmp}/fullchain.pem`, fs.readFileSync(`${tmp}/cert.pem`, 'utf8') + fs.readFileSync(caCert, 'utf8'));
    const live = path.join(dir, id);
    fs.mkdirSync(live, { recursive: true });
    // key before certificate: a reader never pairs the new certificate with the old key
    for (const f of ['privkey.pem', 'chain.pem', 'fullchain.pem', 'cert.pem']) fs.renameSync(`${tmp}/${f}`, path.join(live, f));
    fs.rmSync(tmp, { recursive: true, force: true });
    return api.readLineage(files(id));
  }

  return {
    name: 'local-ca',
    find,
    list: async () => (await Promise.all(fs.readdirSync(dir).filter((n) => !n.startsWith('.')).map(find))).filter(Boolean),
    obtain: (req) => sign(req.id, req.names, req.challenge),
    renew: (lineage) => sign(lineage.id, lineage.names),
    lineageOfPath: (file) => (path.dirname(path.resolve(file)).startsWith(dir + path.sep) ? path.basename(path.dirname(path.resolve(file))) : undefined),
  };
}
