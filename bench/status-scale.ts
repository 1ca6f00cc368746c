/**
 * bench/status-scale: 10,000 generated lineages in a certbot-style config dir (live/ symlinks into archive/,
 * renewal/*.conf). Times `autossl status` cold (new state store: every certificate parsed) and warm (nothing
 * changed: no certificate parsed), and `certbot certificates` on the same dir, same run.
 *   npm run build && node dist/bench/status-scale.js [count]
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { execa } from 'execa';
import { BINARIES } from '../scripts/sandbox/rig.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);
const count = Number(process.argv[2] ?? 10_000);
const CLI = path.resolve(import.meta.dirname, '../src/cli.js');
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-status-scale-'));
const le = path.join(dir, 'le');
for (const d of ['live', 'archive', 'renewal']) fs.mkdirSync(path.join(le, d), { recursive: true });

const keys = (await crypto.webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as CryptoKeyPair;
const pkcs8 = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', keys.privateKey)).toString('base64');
const keyPem = `-----BEGIN PRIVATE KEY-----\n${pkcs8.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
const DAY = 86_400_000;
const t0 = performance.now();
for (let i = 0; i < count; i++) {
  const name = `site${i}.scale.test`;
  const left = (i % 90) - 5; // a spread of states: expired, due, ok
  const notAfter = new Date(Date.now() + left * DAY);
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: `01${i.toString(16).padStart(8, '0')}`,
    name: `CN=${name}`,
    notBefore: new Date(notAfter.getTime() - 90 * DAY),
    notAfter,
    keys,
    signingAlgorithm: { name: 'ECDSA', hash: 'SHA-256' },
    extensions: [
      new x509.SubjectAlternativeNameExtension([
        { type: 'dns', value: name },
        { type: 'dns', value: `www.${name}` },
      ]),
    ],
  });
  const pem = cert.toString('pem') + '\n';
  const archive = path.join(le, 'archive', name);
  const live = path.join(le, 'live', name);
  fs.mkdirSync(archive);
  fs.mkdirSync(live);
  for (const f of ['cert', 'chain', 'fullchain', 'privkey']) {
    fs.writeFileSync(path.join(archive, `${f}1.pem`), f === 'privkey' ? keyPem : pem);
    fs.symlinkSync(`../../archive/${name}/${f}1.pem`, path.join(live, `${f}.pem`));
  }
  fs.writeFileSync(
    path.join(le, 'renewal', `${name}.conf`),
    `version = 2.1.0\narchive_dir = ${archive}\ncert = ${live}/cert.pem\nprivkey = ${live}/privkey.pem\nchain = ${live}/chain.pem\nfullchain = ${live}/fullchain.pem\n\n[renewalparams]\naccount = 0123456789abcdef\nauthenticator = webroot\nserver = https://127.0.0.1:14000/dir\nkey_type = ecdsa\n`,
  );
}
console.log(`generated ${count} lineages in ${((performance.now() - t0) / 1000).toFixed(1)} s`);
fs.writeFileSync(path.join(dir, 'nginx.conf'), 'events {}\nhttp {}\n');
const config = path.join(dir, 'autossl.config.json');
fs.writeFileSync(
  config,
  JSON.stringify({
    certbot: { configDir: le, workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
    nginx: { config: path.join(dir, 'nginx.conf') },
    stateDir: path.join(dir, 'state'),
  }),
);

/** Times a command with its output discarded (as when it prints to a terminal nobody pipes): same for both tools. */
async function timed(args: string[], bin = 'node'): Promise<{ s: number; code: number }> {
  const t = performance.now();
  const r = await execa(bin, args, { reject: false, stdout: 'ignore', stderr: 'ignore' });
  return { s: (performance.now() - t) / 1000, code: r.exitCode ?? -1 };
}
// the generated files are flushed first, so no tool is timed against the kernel writing them back
await execa('sync');
const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
const runs = Number(process.env.RUNS ?? 3);
const colds: number[] = [];
let rows = 0;
for (let i = 0; i < runs; i++) {
  fs.rmSync(path.join(dir, 'state'), { recursive: true, force: true }); // cold: a new state store, every certificate parsed
  colds.push((await timed([CLI, 'status', '--json', '--config', config])).s);
}
rows = (JSON.parse(String((await execa('node', [CLI, 'status', '--json', '--config', config], { reject: false })).stdout)) as { certificates: unknown[] })
  .certificates.length;
const warms: number[] = [];
for (let i = 0; i < runs; i++) warms.push((await timed([CLI, 'status', '--json', '--config', config])).s);
const certbots: number[] = [];
let certbotCode = 0;
for (let i = 0; i < runs; i++) {
  const r = await timed(['certificates', '--config-dir', le, '--work-dir', path.join(dir, 'work'), '--logs-dir', path.join(dir, 'logs')], BINARIES.certbot);
  certbots.push(r.s);
  certbotCode = r.code;
}
const cold = { s: median(colds) };
const warm = { s: median(warms) };
const certbot = { s: median(certbots), code: certbotCode };
console.log(`status-scale: ${count} lineages (${rows} rows reported), medians of ${runs} runs`);
console.log(`autossl status, cold        ${cold.s.toFixed(2)} s   (under 2 s: ${cold.s < 2 ? 'met' : 'NOT met'})`);
console.log(`autossl status, warm        ${warm.s.toFixed(2)} s`);
console.log(`certbot certificates        ${certbot.s.toFixed(2)} s   (exit ${certbot.code})`);
console.log(
  `ratio certbot / autossl     cold ${(certbot.s / cold.s).toFixed(1)}x, warm ${(certbot.s / warm.s).toFixed(1)}x   (bar >= 10x: ${certbot.s / cold.s >= 10 ? 'met' : 'NOT met'})`,
);
if (!process.env.KEEP) fs.rmSync(dir, { recursive: true, force: true });
else console.log(dir);
