/**
 * Uploads checked before a byte is written (issue 19): each bad upload of the matrix (an RSA-1024 key, a SHA-1
 * signed leaf, a CA:TRUE leaf, a chain with an expired intermediate, a chain out of order, a key of another
 * certificate, names that do not cover the domain) sent to a live agent's /ssl/upload is 400 UPLOAD_INVALID with a
 * hint, and the sha256 of every file of the state directory and of the nginx tree is the same after (the state
 * store's SQLite files excepted: it remembers each signed request against replays). Then `autossl upload` killed
 * with SIGKILL after the upload's directory was written (and again after the vhost edit), and `autossl recover`:
 * no key left under state/custom/, the vhost byte-identical. Needs dist (npx tsc -p tsconfig.json).
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import * as x509 from '@peculiar/x509';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { rfc3339, sign } from '../../src/agent/auth.js';
import { startAgent, type RunningAgent } from '../../src/agent/server.js';
import { recoverUploads } from '../../src/issuer/upload.js';
import { makeTree } from '../helpers/nginx-fixture.js';

x509.cryptoProvider.set(crypto.webcrypto as unknown as Crypto);

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const TOKEN = 'u'.repeat(64);
const DAY = 86_400_000;
const DOMAIN = 'up.test';

type Keys = CryptoKeyPair;
const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const rsa = (bits: number, hash = 'SHA-256'): RsaHashedKeyGenParams => ({
  name: 'RSASSA-PKCS1-v1_5',
  modulusLength: bits,
  publicExponent: new Uint8Array([1, 0, 1]),
  hash,
});
const keys = async (alg: EcKeyGenParams | RsaHashedKeyGenParams): Promise<Keys> =>
  (await crypto.webcrypto.subtle.generateKey(alg, true, ['sign', 'verify'])) as Keys;
const signing = (k: Keys): Algorithm & { hash?: string } =>
  k.privateKey.algorithm.name === 'ECDSA' ? { name: 'ECDSA', hash: 'SHA-256' } : { name: 'RSASSA-PKCS1-v1_5' };

interface Issued {
  cert: x509.X509Certificate;
  keys: Keys;
}

async function issue(
  subject: string,
  own: Keys,
  issuer: Issued | null,
  o: { ca?: boolean; names?: string[]; notBefore?: Date; notAfter?: Date } = {},
): Promise<Issued> {
  const signer = issuer?.keys ?? own;
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: `01${crypto.randomBytes(8).toString('hex')}`,
    subject: `CN=${subject}`,
    issuer: issuer ? issuer.cert.subject : `CN=${subject}`,
    notBefore: o.notBefore ?? new Date(Date.now() - 10 * DAY),
    notAfter: o.notAfter ?? new Date(Date.now() + 90 * DAY),
    publicKey: own.publicKey,
    signingKey: signer.privateKey,
    signingAlgorithm: signing(signer),
    extensions: [
      new x509.BasicConstraintsExtension(o.ca === true, undefined, true),
      ...(o.ca ? [new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign, true)] : []),
      ...(o.names ? [new x509.SubjectAlternativeNameExtension(o.names.map((n) => ({ type: 'dns' as const, value: n })))] : []),
    ],
  });
  return { cert, keys: own };
}

const pem = (...c: Issued[]): string => c.map((x) => `${x.cert.toString('pem')}\n`).join('');
async function keyPem(k: Keys): Promise<string> {
  const b64 = Buffer.from(await crypto.webcrypto.subtle.exportKey('pkcs8', k.privateKey)).toString('base64');
  return `-----BEGIN PRIVATE KEY-----\n${b64.match(/.{1,64}/g)!.join('\n')}\n-----END PRIVATE KEY-----\n`;
}

/** sha256 of every file under `dirs`, by path (the state store's SQLite files left out). */
function treeHash(...dirs: string[]): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (e.isFile() && !/\.(db|sqlite)(-wal|-shm|-journal)?$/.test(e.name)) out[p] = crypto.createHash('sha256').update(fs.readFileSync(p)).digest('hex');
    }
  };
  for (const d of dirs) if (fs.existsSync(d)) walk(d);
  return out;
}

let dir: string;
let tree: Awaited<ReturnType<typeof makeTree>>;
let raw: Record<string, unknown>;
let agent: RunningAgent | null = null;
let good: { chain: string; key: string };
const cases: Array<[string, { certificate: string; private_key: string; domain?: string }, RegExp]> = [];

beforeAll(async () => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-upload-matrix-'));
  tree = await makeTree(`server {\n    listen 80;\n    server_name ${DOMAIN};\n    root /var/www/up;\n}\n`);
  fs.writeFileSync(path.join(dir, 'tokens'), `${TOKEN}\n`, { mode: 0o600 });
  raw = {
    nginx: { config: tree.main, extraArgs: ['-p', tree.dir, '-e', path.join(tree.dir, 'error.log')], reloadCommand: ['true'] },
    stateDir: path.join(dir, 'state'),
    certbot: { configDir: path.join(dir, 'le'), workDir: path.join(dir, 'work'), logsDir: path.join(dir, 'logs') },
    agent: { tokensFile: path.join(dir, 'tokens'), logLevel: 'silent' },
  };
  const root = await issue('matrix root', await keys(EC), null, { ca: true, notAfter: new Date(Date.now() + 3650 * DAY) });
  const inter = await issue('matrix intermediate', await keys(EC), root, { ca: true });
  const leaf = await issue(DOMAIN, await keys(EC), inter, { names: [DOMAIN] });
  good = { chain: pem(leaf, inter), key: await keyPem(leaf.keys) };

  const rsa1024 = await issue(DOMAIN, await keys(rsa(1024)), inter, { names: [DOMAIN] });
  cases.push(['an RSA-1024 key', { certificate: pem(rsa1024, inter), private_key: await keyPem(rsa1024.keys) }, /RSA-1024; at least RSA-2048/]);
  const sha1Ca = await issue('matrix sha1 CA', await keys(rsa(2048, 'SHA-1')), root, { ca: true });
  const sha1Leaf = await issue(DOMAIN, await keys(EC), sha1Ca, { names: [DOMAIN] });
  cases.push(['a SHA-1-signed leaf', { certificate: pem(sha1Leaf, sha1Ca), private_key: await keyPem(sha1Leaf.keys) }, /signed with SHA-1/]);
  const caLeaf = await issue(DOMAIN, await keys(EC), inter, { names: [DOMAIN], ca: true });
  cases.push(['a CA:TRUE leaf', { certificate: pem(caLeaf, inter), private_key: await keyPem(caLeaf.keys) }, /is a CA certificate/]);
  const expiredInter = await issue('matrix expired intermediate', await keys(EC), root, {
    ca: true,
    notBefore: new Date(Date.now() - 400 * DAY),
    notAfter: new Date(Date.now() - DAY),
  });
  const underExpired = await issue(DOMAIN, await keys(EC), expiredInter, { names: [DOMAIN] });
  cases.push([
    'a chain with an expired intermediate',
    { certificate: pem(underExpired, expiredInter), private_key: await keyPem(underExpired.keys) },
    /certificate 2 "matrix expired intermediate" expired/,
  ]);
  cases.push(['a chain in the wrong order', { certificate: pem(leaf, root, inter), private_key: good.key }, /out of order/]);
  cases.push(['the intermediate first', { certificate: pem(inter, leaf), private_key: good.key }, /(is a CA certificate|further down the chain)/]);
  const other = await issue(DOMAIN, await keys(EC), inter, { names: [DOMAIN] });
  cases.push(['a key of another certificate', { certificate: good.chain, private_key: await keyPem(other.keys) }, /does not belong/]);
  const elsewhere = await issue('elsewhere.test', await keys(EC), inter, { names: ['elsewhere.test', '*.sub.up.test'] });
  cases.push([
    'names that do not cover the domain',
    { certificate: pem(elsewhere, inter), private_key: await keyPem(elsewhere.keys) },
    /does not cover up\.test/,
  ]);
  agent = await startAgent(validateConfig(raw, path.join(dir, 'x.json'), dir), { port: 0 });
});

afterAll(async () => {
  await agent?.close();
});

async function upload(body: Record<string, unknown>): Promise<{ status: number; json: Record<string, unknown> }> {
  const text = JSON.stringify({ domain: DOMAIN, username: '', ...body });
  const ts = rfc3339();
  const res = await fetch(`${agent!.url}/ssl/upload`, {
    method: 'POST',
    body: text,
    headers: { 'content-type': 'application/json', 'x-timestamp': ts, 'x-signature': sign(TOKEN, ts, 'POST', '/ssl/upload', text) },
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

describe('upload matrix', () => {
  it('each bad upload is 400 UPLOAD_INVALID with a hint, and nothing is written', async () => {
    expect(cases).toHaveLength(8);
    for (const [name, body, message] of cases) {
      const before = treeHash(path.join(dir, 'state'), tree.dir);
      const r = await upload(body);
      expect([r.status, r.json.code], `${name}: ${JSON.stringify(r.json)}`).toEqual([400, 'UPLOAD_INVALID']);
      expect(r.json.error, name).toMatch(message);
      expect(String(r.json.hint).length, name).toBeGreaterThan(10);
      expect(treeHash(path.join(dir, 'state'), tree.dir), name).toEqual(before);
      expect(fs.existsSync(path.join(dir, 'state', 'custom')), name).toBe(false);
    }
  });

  it('the same checks for `autossl upload` (the CLI): exit 2, UPLOAD_INVALID, nothing written', async () => {
    const config = path.join(dir, 'cli.json');
    fs.writeFileSync(config, JSON.stringify(raw));
    const [, body, message] = cases[0]!;
    fs.writeFileSync(path.join(dir, 'weak.crt'), body.certificate);
    fs.writeFileSync(path.join(dir, 'weak.key'), body.private_key, { mode: 0o600 });
    const before = treeHash(path.join(dir, 'state'), tree.dir);
    const run = await execa(
      'node',
      [CLI, '--config', config, 'upload', DOMAIN, '--cert', path.join(dir, 'weak.crt'), '--key', path.join(dir, 'weak.key'), '--json'],
      { reject: false },
    );
    expect(run.exitCode, run.stderr).toBe(2);
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: false,
      error: { code: 'UPLOAD_INVALID', message: expect.stringMatching(message), hint: expect.any(String) },
    });
    expect(treeHash(path.join(dir, 'state'), tree.dir)).toEqual(before);
  });
});

describe('a killed upload', () => {
  const HANG = `import fs from 'node:fs';\nexport default { name: 'hang', apply(hooks) { const at = process.env.AUTOSSL_TEST_HANG_AT; if (!at) return; hooks[at].tapPromise({ name: 'hang', stage: -1000 }, () => { fs.writeFileSync(process.env.AUTOSSL_TEST_HANG_MARKER, at); return new Promise(() => setInterval(() => {}, 1000)); }); } };\n`;

  it.each(['vhost', 'validate'])('SIGKILL at %s, then `autossl recover`: no key left under state/custom/, the vhost as before', async (at) => {
    fs.writeFileSync(path.join(dir, 'hang.mjs'), HANG);
    const config = path.join(dir, `kill-${at}.json`);
    fs.writeFileSync(config, JSON.stringify({ ...raw, plugins: [path.join(dir, 'hang.mjs')] }));
    fs.writeFileSync(path.join(dir, 'good.crt'), good.chain);
    fs.writeFileSync(path.join(dir, 'good.key'), good.key, { mode: 0o600 });
    const site = fs.readFileSync(tree.site);
    const marker = path.join(dir, `hung-${at}`);
    const child = execa('node', [CLI, '--config', config, 'upload', DOMAIN, '--cert', path.join(dir, 'good.crt'), '--key', path.join(dir, 'good.key')], {
      reject: false,
      env: { AUTOSSL_TEST_HANG_AT: at, AUTOSSL_TEST_HANG_MARKER: marker },
    });
    await expect.poll(() => fs.existsSync(marker), { timeout: 30_000, interval: 100 }).toBe(true);
    const keysNow = (): string[] =>
      fs.existsSync(path.join(dir, 'state', 'custom'))
        ? (fs.readdirSync(path.join(dir, 'state', 'custom'), { recursive: true }) as string[]).filter((f) => f.endsWith('privkey.pem'))
        : [];
    expect(keysNow()).toHaveLength(1); // written before the hook: what a kill leaves
    child.kill('SIGKILL');
    await child;
    const rec = await execa('node', [CLI, '--config', config, 'recover'], { reject: false });
    expect(rec.exitCode, rec.stderr + rec.stdout).toBe(0);
    expect(keysNow()).toEqual([]);
    expect(fs.readFileSync(tree.site).equals(site)).toBe(true);
  });

  it('recover removes a half-written temporary directory of a dead process, never one of a live one', async () => {
    const state = { stateDir: path.join(dir, 'state-tmp') };
    const base = path.join(state.stateDir, 'custom', DOMAIN);
    fs.mkdirSync(path.join(base, '.upload-aaaa-x1'), { recursive: true });
    fs.writeFileSync(path.join(base, '.upload-aaaa-x1', 'privkey.pem'), 'k');
    fs.writeFileSync(path.join(base, '.pending-aaaa'), '999999999\n');
    fs.mkdirSync(path.join(base, '.upload-bbbb-x2'), { recursive: true });
    fs.writeFileSync(path.join(base, '.pending-bbbb'), `${process.ppid}\n`); // alive
    const removed = await recoverUploads(state, new Set());
    expect(removed).toEqual([path.join(base, '.upload-aaaa-x1')]);
    expect(fs.readdirSync(base).sort()).toEqual(['.pending-bbbb', '.upload-bbbb-x2']);
  });
});
