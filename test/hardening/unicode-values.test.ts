/**
 * Issue 19, found 1: vhost files were written as latin1, so a character above U+00FF kept only its low byte
 * (U+0122 -> `"`, U+013B -> `;`, U+017D -> `}`, U+0120 -> space, U+012F -> `/`, U+0124 -> `$`, U+010A -> newline): a
 * user name of such letters became nginx syntax (`location /leak { alias /etc/; }`), and fullwidth ａｄｍｉｎ became
 * ADMIN. Every value now passes one gate (src/nginx/value.ts). For random Unicode strings as an agent user name, a
 * document root in the config, a site of `/v1/issue` and a plugin's directive value: either refused before any
 * write (a coded error) or written so that reading the file back gives exactly the value and the same number of
 * statements.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import fc from 'fast-check';
import { afterAll, describe, expect, it } from 'vitest';
import { AutoSslError } from '../../src/errors.js';
import { validateConfig } from '../../src/config/schema.js';
import { documentRootFor, panelUsername } from '../../src/agent/input.js';
import { nativeHandlers } from '../../src/agent/native.js';
import { newVhostEdit, planChallengeEdit, planHttpsEdit, servedCertificatePath } from '../../src/nginx/edit.js';
import { addHttpsDirectives } from '../../src/stages/vhost-https.js';
import { parseConfig, walkDirectives, type Directive } from '../../src/nginx/parse.js';
import { fingerprint } from '../../src/nginx/fingerprint.js';
import { clearConfigCache, NginxTree } from '../../src/nginx/tree.js';
import { fileBytes, valueFromFile } from '../../src/nginx/value.js';
import { HOSTILE_UNICODE } from '../helpers/hostile.js';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-unicode-'));
afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

// a UTF-8 site file (a comment in UTF-8): new values are written as UTF-8 and it stays UTF-8
const SITE = 'server {\n    # café\n    listen 80;\n    server_name u.test;\n}\n';
let n = 0;

/** A tree holding SITE, loaded fresh. */
function tree(): { t: NginxTree; site: string } {
  const root = path.join(dir, String(n++));
  fs.mkdirSync(path.join(root, 'sites'), { recursive: true });
  const main = path.join(root, 'nginx.conf');
  fs.writeFileSync(main, `events {}\nhttp {\n    include ${root}/sites/*.conf;\n}\n`);
  const site = path.join(root, 'sites', 'site.conf');
  fs.writeFileSync(site, SITE);
  clearConfigCache();
  return { t: NginxTree.load(main), site };
}

const statements = (text: string): number => fingerprint(parseConfig(text, 'x')).filter((f) => f.kind === 'directive').length;

/** Plans the challenge edit with this document root; the written root reads back as exactly the value. */
function documentRootRoundTrip(documentRoot: string): void {
  const { t, site } = tree();
  const plan = planChallengeEdit(t, ['u.test'], { documentRoot, fallbackWebroot: path.join(dir, 'acme') });
  expect(plan.webroot).toBe(documentRoot);
  const [edit] = plan.edits;
  expect(edit?.file).toBe(site);
  const bytes = fileBytes(edit!.after, site); // never a narrowed character
  const after = bytes.toString('latin1');
  // location ^~ /.well-known/acme-challenge/ { root; default_type; try_files; }: four new statements, no more
  expect(statements(after)).toBe(statements(SITE) + 4);
  const roots = [...walkDirectives(parseConfig(after, site).children)].filter((d: Directive) => d.name === 'root');
  expect(roots.map((d) => valueFromFile(d.words[1]!.value))).toEqual([documentRoot]);
  expect(bytes.toString('utf8')).toContain(documentRoot); // UTF-8 in, UTF-8 out
}

/** Whatever the gate refuses is a coded input error, thrown before anything is planned or written. */
function refusedWith(error: unknown, codes: string[]): void {
  expect(error).toBeInstanceOf(AutoSslError);
  expect(codes).toContain((error as AutoSslError).code);
}

/** Strings mixing the characters of the issue (and fullwidth forms, bidi controls) with any Unicode. */
const hostile = fc
  .array(fc.oneof(fc.constantFrom(...HOSTILE_UNICODE), fc.string({ unit: 'binary', maxLength: 3 }), fc.constantFrom('a', 'z', '_', '-', '0')), {
    minLength: 1,
    maxLength: 12,
  })
  .map((parts) => parts.join(''));
const runs = { numRuns: 150 };

describe('a Unicode value is refused before any write, or written exactly', () => {
  it('the cases of the issue, one by one', () => {
    for (const value of [...HOSTILE_UNICODE, 'x";}location /leak{alias /etc/;#']) {
      let accepted = false;
      try {
        validateConfig({ sites: [{ domain: 'u.test', documentRoot: `/srv/${value}` }] }, 'config', '/');
        accepted = true;
      } catch (error) {
        refusedWith(error, ['CONFIG_INVALID']);
      }
      if (accepted) documentRootRoundTrip(`/srv/${value}`);
    }
    // the found injection: 32 letters nginx read as `"/home/x";}location /leak{alias /etc/;#/public_html`
    expect(() => panelUsername('xĢ;Ž location /leak{alias /etc/;#')).toThrow(expect.objectContaining({ code: 'AGENT_BAD_REQUEST' }));
    documentRootRoundTrip('/srv/ａｄｍｉｎ'); // fullwidth stays fullwidth (it was written as ADMIN)
    // a refusal names the value without reordering the message: the bidi control is shown escaped
    for (const attempt of [
      () => panelUsername('adm\u202ein'),
      () => validateConfig({ sites: [{ domain: 'u.test', documentRoot: '/srv/a\u202eb' }] }, 'config', '/'),
    ]) {
      let message = '';
      try {
        attempt();
      } catch (error) {
        message = (error as Error).message;
      }
      expect(message).toContain('\\u202e');
      expect(message).not.toContain('\u202e');
    }
  });

  it('sites[].documentRoot in the config', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        const documentRoot = `/srv/www/${value}`;
        let config;
        try {
          config = validateConfig({ sites: [{ domain: 'u.test', documentRoot }] }, 'config', '/');
        } catch (error) {
          refusedWith(error, ['CONFIG_INVALID']);
          return;
        }
        documentRootRoundTrip(config.sites[0]!.documentRoot!);
      }),
      runs,
    );
  });

  it('an agent user name filling agent.documentRoot /home/{username}/public_html', () => {
    fc.assert(
      fc.property(hostile, (value) => {
        let username;
        try {
          username = panelUsername(value);
        } catch (error) {
          refusedWith(error, ['AGENT_BAD_REQUEST']);
          return;
        }
        if (value === '') {
          expect(username).toBeUndefined(); // "" is "not given"
          return;
        }
        expect(username).toMatch(/^[a-z_][a-z0-9_-]{0,31}$/);
        documentRootRoundTrip(documentRootFor('/home/{username}/public_html', username, 'u.test')!);
      }),
      runs,
    );
  });

  it('a site of /v1/issue (its documentRoot, its username)', async () => {
    await fc.assert(
      fc.asyncProperty(hostile, fc.boolean(), async (value, asUser) => {
        const site = asUser ? { domain: 'u.test', username: value } : { domain: 'u.test', documentRoot: `/srv/${value}` };
        const registered: Array<Record<string, unknown>> = [];
        const ctx = {
          config: { agent: { documentRoot: '/home/{username}/public_html' } },
          validateSite: (s: Record<string, unknown>) => void validateConfig({ sites: [s] }, 'site', '/'),
          intake: { jobOf: () => undefined, run: () => ({ jobId: 'j1' }) },
          engine: { registerSite: (s: Record<string, unknown>) => registered.push(s) },
        };
        const reply = { code: () => ({ send: (x: unknown) => x }) };
        try {
          await nativeHandlers['v1.issue']!({ body: { sites: [site] } } as never, reply as never, ctx as never);
        } catch (error) {
          refusedWith(error, ['AGENT_BAD_REQUEST']);
          expect(registered).toEqual([]); // nothing reached the engine
          return;
        }
        if (asUser && value === '') {
          expect(registered[0]!.documentRoot).toBeUndefined(); // no user name given, no root
          return;
        }
        documentRootRoundTrip(registered[0]!.documentRoot as string);
      }),
      runs,
    );
  });

  it("a plugin's directive value (add_header X-Panel <value>)", () => {
    const planWith = (value: string) => {
      const { t, site } = tree();
      const edit = newVhostEdit(['u.test']);
      edit.https._add('ssl_certificate', '/etc/ssl/a.pem');
      edit.https._add('ssl_certificate_key', '/etc/ssl/a.key');
      edit.https._add('add_header', `X-Panel ${value}`);
      return { site, plan: planHttpsEdit(t, edit, { nginxVersion: [1, 22, 1] }) };
    };
    const plain = planWith('ok');
    const baseline = statements(plain.plan.edits.find((e) => e.file === plain.site)!.after);
    fc.assert(
      fc.property(hostile, (value) => {
        let plan, site;
        try {
          ({ plan, site } = planWith(value));
        } catch (error) {
          refusedWith(error, ['PLUGIN_ERROR']);
          return;
        }
        const after = fileBytes(plan.edits.find((e) => e.file === site)!.after, site).toString('latin1');
        const headers = [...walkDirectives(parseConfig(after, site).children)].filter((d) => d.name === 'add_header');
        // what nginx reads is what the plugin's text says, word for word, and nothing more was added
        const meant = parseConfig(`add_header X-Panel ${value};`, 'plugin').children as Directive[];
        expect(headers.map((d) => d.words.map((w) => valueFromFile(w.value)))).toEqual(meant.map((d) => d.words.map((w) => w.value)));
        expect(statements(after)).toBe(baseline);
      }),
      runs,
    );
  });
});

describe('files keep the encoding they were read in; nothing is narrowed', () => {
  it('a UTF-8 vhost stays UTF-8 and its existing bytes stay as they were', () => {
    documentRootRoundTrip('/srv/café/ｗｗｗ');
  });

  it('a vhost that is not UTF-8 (latin1 bytes) takes no new non-ASCII value, and keeps its bytes when the value is ASCII', () => {
    const root = path.join(dir, 'latin1');
    fs.mkdirSync(path.join(root, 'sites'), { recursive: true });
    const main = path.join(root, 'nginx.conf');
    fs.writeFileSync(main, `events {}\nhttp {\n    include ${root}/sites/*.conf;\n}\n`);
    const site = path.join(root, 'sites', 'site.conf');
    const latin1 = Buffer.from('server {\n    # caf\xe9\n    listen 80;\n    server_name u.test;\n}\n', 'latin1');
    fs.writeFileSync(site, latin1);
    clearConfigCache();
    expect(() => planChallengeEdit(NginxTree.load(main), ['u.test'], { documentRoot: '/srv/café', fallbackWebroot: '/x' })).toThrow(
      expect.objectContaining({ code: 'VHOST_EDIT_UNSAFE', message: expect.stringContaining('not UTF-8') }),
    );
    const plan = planChallengeEdit(NginxTree.load(main), ['u.test'], { documentRoot: '/srv/cafe', fallbackWebroot: '/x' });
    const bytes = fileBytes(plan.edits[0]!.after, site);
    expect(bytes.includes(Buffer.from('# caf\xe9\n', 'latin1'))).toBe(true);
  });

  it('the writer refuses a character that is not a byte instead of keeping its low byte', () => {
    expect(() => fileBytes('root /home/x\u013b', 'a.conf')).toThrow(expect.objectContaining({ code: 'VHOST_EDIT_UNSAFE' }));
    expect(fileBytes('root /home/x\u00c4\u00bb;', 'a.conf')).toEqual(Buffer.from('root /home/xĻ;', 'utf8'));
  });
});

describe('a certificate path outside ASCII', () => {
  it('is written as UTF-8, read back as the same path, and planning again changes nothing', () => {
    const { t, site } = tree();
    const live = path.join(dir, 'certs-café', 'ｌｉｖｅ');
    const edit = () => {
      const e = newVhostEdit(['u.test']);
      addHttpsDirectives(e, { fullchain: path.join(live, 'fullchain.pem'), privkey: path.join(live, 'privkey.pem') }, { port: 443, http2: false });
      return e;
    };
    const first = planHttpsEdit(t, edit(), { nginxVersion: [1, 22, 1] });
    const after = first.edits.find((e) => e.file === site)!.after;
    fs.writeFileSync(site, fileBytes(after, site));
    expect(fs.readFileSync(site, 'utf8')).toContain(`ssl_certificate ${live}/fullchain.pem;`);
    clearConfigCache();
    const again = NginxTree.load(t.mainFile);
    expect(servedCertificatePath(again, again.findServers('u.test').https[0]!)).toBe(path.join(live, 'fullchain.pem'));
    expect(planHttpsEdit(again, edit(), { nginxVersion: [1, 22, 1] }).edits).toEqual([]);
  });
});
