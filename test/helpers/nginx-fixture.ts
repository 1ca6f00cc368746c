/**
 * A private nginx config tree for one fixture: the fixture's site.conf under sites/, its snippets, stub
 * includes and throwaway certificates, and a main nginx.conf of its own, so `nginx -t` runs on the real thing
 * without touching /etc/nginx.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { nginxMainConfig, BINARIES } from '../../scripts/sandbox/rig.js';
import { clearConfigCache, NginxTree } from '../../src/nginx/tree.js';
import { certificateKeyType, newVhostEdit, planChallengeEdit, planHttpsEdit, usesHttp2Directive, type FileEdit } from '../../src/nginx/edit.js';
import { NginxControl } from '../../src/nginx/control.js';
import { addHttpsDirectives, HSTS_HEADER } from '../../src/stages/vhost-https.js';

export const FIXTURES = path.resolve(import.meta.dirname, '../../fixtures/nginx');

export interface FixtureCase {
  names: string[];
  redirect?: boolean;
  hsts?: boolean;
}

const certPairs = new Map<string, { cert: string; key: string }>();

/**
 * One self-signed certificate per key type reused by every fixture (nginx -t loads the files named by
 * ssl_certificate): ECDSA (what autossl issues by default) and RSA (for blocks holding both pairs).
 */
export async function testCertificate(type: 'ecdsa' | 'rsa' = 'ecdsa'): Promise<{ cert: string; key: string }> {
  const known = certPairs.get(type);
  if (known) return known;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-cert-'));
  const cert = path.join(dir, 'fullchain.pem');
  const key = path.join(dir, 'privkey.pem');
  const keyArgs = type === 'ecdsa' ? ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1'] : ['-newkey', 'rsa:2048'];
  await execa(BINARIES.openssl, ['req', '-x509', ...keyArgs, '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=fixture']);
  const pair = { cert, key };
  certPairs.set(type, pair);
  return pair;
}

export interface NginxSandboxTree {
  dir: string;
  main: string;
  site: string;
  control: NginxControl;
  live: string;
}

/**
 * An autossl config file beside a tree (its nginx, certbot's directory `le` and the state directory in the tree),
 * with `extra` keys (sites, plugins) after those; returns its path.
 */
export function writeTreeConfig(t: { dir: string; main: string }, extra: Record<string, unknown> = {}): string {
  const file = path.join(t.dir, 'autossl.config.json');
  fs.writeFileSync(
    file,
    JSON.stringify({
      nginx: { binary: BINARIES.nginx, config: t.main },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
      ...extra,
    }),
  );
  return file;
}

export async function makeTree(siteSource: string, extraFiles: Record<string, string> = {}): Promise<NginxSandboxTree> {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fx-'));
  fs.chmodSync(dir, 0o755); // nginx's workers run as www-data, as Debian's do
  const { cert, key } = await testCertificate();
  const rsa = await testCertificate('rsa');
  for (const sub of ['old', 'old-rsa', 'live/site', 'sites', 'tmp', 'acme']) fs.mkdirSync(path.join(dir, sub), { recursive: true });
  for (const d of ['old', 'live/site']) {
    fs.copyFileSync(cert, path.join(dir, d, 'fullchain.pem'));
    fs.copyFileSync(key, path.join(dir, d, 'privkey.pem'));
  }
  fs.copyFileSync(rsa.cert, path.join(dir, 'old-rsa', 'fullchain.pem'));
  fs.copyFileSync(rsa.key, path.join(dir, 'old-rsa', 'privkey.pem'));
  fs.writeFileSync(path.join(dir, 'fastcgi_params'), 'fastcgi_param QUERY_STRING $query_string;\n');
  for (const [rel, text] of Object.entries(extraFiles)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  const main = path.join(dir, 'nginx.conf');
  fs.writeFileSync(main, nginxMainConfig(dir, path.join(dir, 'sites')));
  const site = path.join(dir, 'sites', 'site.conf');
  fs.writeFileSync(site, siteSource.replaceAll('{{DIR}}', dir), { encoding: 'latin1' });
  const control = new NginxControl({ binary: BINARIES.nginx, config: main, extraArgs: ['-p', dir, '-e', path.join(dir, 'error.log')] });
  return { dir, main, site, control, live: path.join(dir, 'live', 'site') };
}

export async function loadFixture(
  name: string,
): Promise<{ tree: NginxSandboxTree; fixtureCase: FixtureCase; input: string; expected: string | null; expectedFile: string }> {
  const fdir = path.join(FIXTURES, name);
  const input = fs.readFileSync(path.join(fdir, 'site.conf'), 'latin1');
  const extra: Record<string, string> = {};
  const snippets = path.join(fdir, 'snippets');
  if (fs.existsSync(snippets)) for (const f of fs.readdirSync(snippets)) extra[`snippets/${f}`] = fs.readFileSync(path.join(snippets, f), 'latin1');
  const fixtureCase = JSON.parse(fs.readFileSync(path.join(fdir, 'case.json'), 'utf8')) as FixtureCase;
  const tree = await makeTree(input, extra);
  const expectedFile = expectedFileFor(fdir, await tree.control.version());
  const expected = fs.existsSync(expectedFile) ? fs.readFileSync(expectedFile, 'latin1') : null;
  return { tree, fixtureCase, input, expected, expectedFile };
}

/**
 * The expected output for the nginx that runs the test: expected.conf is written as nginx before 1.25.1 takes
 * HTTP/2 (`listen ... ssl http2;`); where nginx 1.25.1 and later get other bytes (`listen ... ssl;` + `http2 on;`),
 * expected.http2-on.conf holds them. The choice is the editor's own (usesHttp2Directive).
 */
export function expectedFileFor(fixtureDir: string, nginxVersion: [number, number, number]): string {
  const newer = path.join(fixtureDir, 'expected.http2-on.conf');
  return usesHttp2Directive(nginxVersion) && fs.existsSync(newer) ? newer : path.join(fixtureDir, 'expected.conf');
}

function write(edits: readonly FileEdit[]): void {
  for (const e of edits) fs.writeFileSync(e.file, e.after, 'latin1');
  clearConfigCache();
}

/** The edits `autossl issue` makes for a fixture: the challenge edit, then the HTTPS edit. Returns the edits. */
export async function runIssueEdits(t: NginxSandboxTree, c: FixtureCase, nginxVersion?: [number, number, number]): Promise<FileEdit[]> {
  const version = nginxVersion ?? (await t.control.version());
  const challenge = planChallengeEdit(NginxTree.load(t.main), c.names, { fallbackWebroot: path.join(t.dir, 'acme') });
  write(challenge.edits);
  try {
    return [...challenge.edits, ...httpsEdits(t, c, version, challenge.webroot)];
  } catch (error) {
    // as the pipeline's transaction does: a refused HTTPS edit leaves the challenge edit undone too
    for (const e of challenge.edits) fs.writeFileSync(e.file, e.before, 'latin1');
    clearConfigCache();
    throw error;
  }
}

function httpsEdits(t: NginxSandboxTree, c: FixtureCase, version: [number, number, number], webroot: string): FileEdit[] {
  const edit = addHttpsDirectives(
    newVhostEdit(c.names, c.redirect === true),
    { fullchain: path.join(t.live, 'fullchain.pem'), privkey: path.join(t.live, 'privkey.pem') },
    { port: 443, http2: true },
  );
  edit.keyType = certificateKeyType(path.join(t.live, 'fullchain.pem')) ?? 'ecdsa';
  edit.webroot = webroot;
  if (c.hsts) edit.https._add('add_header', HSTS_HEADER);
  const https = planHttpsEdit(NginxTree.load(t.main), edit, { nginxVersion: version });
  write(https.edits);
  return https.edits;
}

/**
 * The lines the editor writes for an HTTPS listen on this machine's nginx (chosen as the editor chooses):
 * `listen <addr> ssl http2;` before nginx 1.25.1, `listen <addr> ssl;` plus one `http2 on;` from then on.
 */
export async function httpsListenLines(addresses: readonly string[]): Promise<{ listens: string[]; http2On: boolean }> {
  const version = await new NginxControl({ binary: BINARIES.nginx, config: '/dev/null' }).version();
  const on = usesHttp2Directive(version);
  return { listens: addresses.map((a) => `listen ${a} ssl${on ? '' : ' http2'};`), http2On: on };
}
