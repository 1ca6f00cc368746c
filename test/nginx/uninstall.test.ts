/**
 * Taking HTTPS off (the panel's "delete"), on every fixture after autossl's own HTTPS edit: the real `nginx -t`
 * accepts the result, the names are answered over plain HTTP by the block that served them, nothing answers them
 * over TLS, no certificate line is left, a second run changes nothing, and a block that served plain HTTP before
 * the issue serves it from the same listens again. Shapes with no single HTTP-only form are refused before any
 * write, naming the block.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NginxTree, clearConfigCache } from '../../src/nginx/tree.js';
import { planUninstall } from '../../src/nginx/uninstall.js';
import { isPlainHttp } from '../../src/nginx/listen.js';
import { FIXTURES, loadFixture, makeTree, runIssueEdits } from '../helpers/nginx-fixture.js';
import { makeSignedCertificate } from '../helpers/certs.js';

/** A certificate (and its key) for these names where the fixture's vhosts point (live/site/). */
async function certificateFor(live: string, certNames: string[]): Promise<void> {
  const now = Date.now();
  const c = await makeSignedCertificate(certNames, new Date(now - 86_400_000), new Date(now + 30 * 86_400_000));
  fs.writeFileSync(path.join(live, 'fullchain.pem'), c.chain);
  fs.writeFileSync(path.join(live, 'privkey.pem'), c.key);
}

const names = fs
  .readdirSync(FIXTURES)
  .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'expected.conf')))
  .sort();

function sockets(main: string, name: string): string[] {
  const block = NginxTree.load(main).findServers(name).http[0];
  return block
    ? block.listens
        .filter(isPlainHttp)
        .map((l) => l.socket)
        .sort()
    : [];
}

describe('uninstall: back to HTTP-only', () => {
  it.each(names)('%s', async (name) => {
    const { tree, fixtureCase } = await loadFixture(name);
    await certificateFor(tree.live, fixtureCase.names);
    const domain = fixtureCase.names[0]!;
    const httpBefore = sockets(tree.main, domain);
    await runIssueEdits(tree, fixtureCase);
    const issued = fs.readFileSync(tree.site, 'latin1');
    const plan = planUninstall(NginxTree.load(tree.main), domain, { aliases: fixtureCase.names.slice(1) });
    expect(plan.served).toBe(true);
    expect(plan.certificates.length).toBeGreaterThan(0);
    for (const e of plan.edits) fs.writeFileSync(e.file, e.after, 'latin1');
    clearConfigCache();
    await expect(tree.control.test()).resolves.toBeUndefined();
    const after = NginxTree.load(tree.main);
    expect(after.findServers(domain).https, 'still answered over TLS').toEqual([]);
    expect(after.findServers(domain).http.length).toBe(1);
    const text = fs.readFileSync(tree.site, 'latin1');
    expect(text).not.toBe(issued);
    // the blocks that answered the domain keep no certificate line (other servers' lines are theirs)
    const served = after.findServers(domain).http[0]!;
    expect(served.config.source.slice(served.directive.start, served.directive.end).replace(/#.*$/gm, '')).not.toMatch(
      /ssl_certificate|Strict-Transport-Security|autossl_redirect|listen[^;]*\bssl\b/,
    );
    if (httpBefore.length) expect(sockets(tree.main, domain)).toEqual(httpBefore);
    // idempotent
    const again = planUninstall(NginxTree.load(tree.main), domain, { aliases: fixtureCase.names.slice(1) });
    expect(again.edits).toEqual([]);
    expect(again.served).toBe(false);
  });

  it('refuses a TLS-only block beside a port-80 block with a site of its own, naming it, before writing', async () => {
    const t = await makeTree(
      `server {\n    listen 80;\n    server_name split.test;\n    root /var/www/plain;\n}\nserver {\n    listen 443 ssl;\n    server_name split.test;\n    root /var/www/secure;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n}\n`,
    );
    expect(() => planUninstall(NginxTree.load(t.main), 'split.test')).toThrow(
      expect.objectContaining({ code: 'VHOST_UNSUPPORTED', message: expect.stringContaining('site.conf:6') }),
    );
  });

  it('refuses a certificate set in a shared snippet, naming the snippet', async () => {
    const t = await makeTree(`server {\n    listen 80;\n    listen 443 ssl;\n    server_name snip.test;\n    include {{DIR}}/snippets/tls.conf;\n}\n`, {
      'snippets/tls.conf': 'ssl_certificate old/fullchain.pem;\nssl_certificate_key old/privkey.pem;\n',
    });
    expect(() => planUninstall(NginxTree.load(t.main), 'snip.test')).toThrow(
      expect.objectContaining({ code: 'VHOST_UNSUPPORTED', message: expect.stringContaining('tls.conf') }),
    );
  });

  it('a name that only shares a block with another site: nothing of that site is taken away (its certificate does not cover the name)', async () => {
    const t = await makeTree(
      `server {\n    listen 80;\n    listen 443 ssl;\n    server_name a.test b.test;\n    ssl_certificate {{DIR}}/live/site/fullchain.pem;\n    ssl_certificate_key {{DIR}}/live/site/privkey.pem;\n}\n`,
    );
    await certificateFor(t.live, ['a.test']);
    expect(planUninstall(NginxTree.load(t.main), 'b.test')).toMatchObject({ edits: [], served: false });
    // a.test itself: b.test has no certificate of its own there, so it is not a site that loses anything
    expect(planUninstall(NginxTree.load(t.main), 'a.test').edits.length).toBeGreaterThan(0);
  });

  it('refuses to take a name off HTTPS when the same certificate serves another site in its block, naming it', async () => {
    const { tree, fixtureCase } = await loadFixture('five-names-one');
    // one certificate for two of the block's names: taking one off takes the other off too
    fixtureCase.names = ['c.five.example.test', 'd.five.example.test'];
    await certificateFor(tree.live, fixtureCase.names);
    await runIssueEdits(tree, fixtureCase);
    const before = fs.readFileSync(tree.site, 'latin1');
    const [domain, ...rest] = fixtureCase.names;
    expect(() => planUninstall(NginxTree.load(tree.main), domain!)).toThrow(
      expect.objectContaining({ code: 'VHOST_CERT_CONFLICT', message: expect.stringContaining(rest.find((n) => !n.startsWith('www.'))!) }),
    );
    expect(fs.readFileSync(tree.site, 'latin1')).toBe(before);
  });

  it('a domain not served over TLS: nothing to do', async () => {
    const t = await makeTree(`server {\n    listen 80;\n    server_name plain.test;\n}\n`);
    const plan = planUninstall(NginxTree.load(t.main), 'plain.test');
    expect(plan).toMatchObject({ edits: [], served: false });
  });

  it('a redirect block that also answers names the TLS block does not serve is kept, and the run refused', async () => {
    const t = await makeTree(
      `server {\n    listen 443 ssl;\n    server_name a.test;\n    ssl_certificate {{DIR}}/old/fullchain.pem;\n    ssl_certificate_key {{DIR}}/old/privkey.pem;\n}\nserver {\n    listen 80;\n    server_name a.test b.test;\n    return 301 https://$host$request_uri;\n}\n`,
    );
    expect(() => planUninstall(NginxTree.load(t.main), 'a.test')).toThrow(
      expect.objectContaining({ code: 'VHOST_UNSUPPORTED', message: expect.stringContaining('b.test') }),
    );
  });

  it('a certbot --nginx shape loses its options-ssl-nginx.conf include and ssl_dhparam too (issue 20, item 9)', async () => {
    const options =
      'ssl_session_cache shared:le_nginx_SSL:10m;\nssl_session_timeout 1440m;\nssl_session_tickets off;\nssl_protocols TLSv1.2 TLSv1.3;\nssl_prefer_server_ciphers off;\n';
    const t = await makeTree(
      `server {\n    server_name cbn.test;\n    root /var/www/cbn;\n    include {{DIR}}/snippets/app.conf;\n\n    listen 443 ssl; # managed by Certbot\n    ssl_certificate {{DIR}}/live/site/fullchain.pem; # managed by Certbot\n    ssl_certificate_key {{DIR}}/live/site/privkey.pem; # managed by Certbot\n    include {{DIR}}/snippets/options-ssl-nginx.conf; # managed by Certbot\n    ssl_dhparam {{DIR}}/snippets/ssl-dhparams.pem; # managed by Certbot\n\n}\nserver {\n    if ($host = cbn.test) {\n        return 301 https://$host$request_uri;\n    } # managed by Certbot\n\n    listen 80;\n    server_name cbn.test;\n    return 404; # managed by Certbot\n}\n`,
      {
        'snippets/options-ssl-nginx.conf': options,
        'snippets/app.conf': 'index index.html;\n',
        'snippets/ssl-dhparams.pem':
          '-----BEGIN DH PARAMETERS-----\nMIIBCAKCAQEA//////////+t+FRYortKmq/cViAnPTzx2LnFg84tNpWp4TZBFGQz\n+8yTnc4kmz75fS/jY2MMddj2gbICrsRhetPfHtXV/WVhJDP1H18GbtCFY2VVPe0a\n87VXE15/V8k1mE8McODmi3fipona8+/och3xWKE2rec1MKzKT0g6eXq8CrGCsyT7\nYdEIqUuyyOP7uWrat2DX9GgdT0Kj3jlN9K5W7edjcrsZCwenyO4KbXCeAvzhzffi\n7MA0BM0oNC9hkXL+nOmFg/+OTxIy7vKBg8P+OxtMb61zO7X8vC7CIAXFjvGDfRaD\nssbzSibBsu/6iGtCOGEoXJf//////////wIBAg==\n-----END DH PARAMETERS-----\n',
      },
    );
    await certificateFor(t.live, ['cbn.test']);
    await expect(t.control.test()).resolves.toBeUndefined();
    const plan = planUninstall(NginxTree.load(t.main), 'cbn.test');
    for (const e of plan.edits) fs.writeFileSync(e.file, e.after, 'latin1');
    clearConfigCache();
    await expect(t.control.test()).resolves.toBeUndefined();
    const text = fs.readFileSync(t.site, 'latin1');
    expect(text).not.toMatch(/options-ssl-nginx|ssl_dhparam|ssl_certificate|listen 443/);
    expect(text).toContain('app.conf'); // an include of the site's own stays
    expect(text).toMatch(/listen 80;/);
  });
});
