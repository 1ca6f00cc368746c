/** The Installer's blocksFor: the blocks nginx picks for a name, per port, as the messages name them (file:line). */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { createNginxInstaller } from '../../src/installer/nginx-installer.js';
import { DEFAULT_CONFIG } from '../../src/config/schema.js';
import { makeTree } from '../helpers/nginx-fixture.js';

describe('Installer.blocksFor', () => {
  it("names every block nginx picks for a name on port 80 and over TLS, by nginx's precedence; none: empty", async () => {
    const t = await makeTree(
      [
        'server { listen 80; server_name *.b.test; }',
        'server { listen 80; server_name www.b.test; }',
        'server { listen 443 ssl; server_name www.b.test; ssl_certificate {{DIR}}/old/fullchain.pem; ssl_certificate_key {{DIR}}/old/privkey.pem; }',
        'server { listen 443 ssl; listen 8443 ssl; server_name .b.test; ssl_certificate {{DIR}}/old/fullchain.pem; ssl_certificate_key {{DIR}}/old/privkey.pem; }',
      ].join('\n') + '\n',
    );
    const installer = createNginxInstaller({ ...DEFAULT_CONFIG, stateDir: path.join(t.dir, 'state'), nginx: { ...DEFAULT_CONFIG.nginx, config: t.main } });
    const tree = installer.load();
    const www = installer.blocksFor(tree, 'www.b.test');
    expect(www.http.map((b) => `${path.basename(b.file)}:${b.line}`)).toEqual(['site.conf:2']);
    expect(www.https.map((b) => `${path.basename(b.file)}:${b.line}`)).toEqual(['site.conf:3']);
    const other = installer.blocksFor(tree, 'x.b.test');
    expect(other.http.map((b) => b.line)).toEqual([1]);
    expect(other.https).toEqual([{ file: t.site, line: 4, serverNames: ['.b.test'], sockets: ['*:443 ssl', '*:8443 ssl'] }]);
    expect(installer.blocksFor(tree, 'nothing.test')).toEqual({ http: [], https: [] });
  });

  it('uncoveredNames: per block that will hold the certificate, the names it answers that the certificate leaves out', async () => {
    const t = await makeTree(
      [
        'server { listen 80; server_name a.u.test www.a.u.test old.u.test; }',
        'server { listen 80; server_name b.u.test; }',
        'server { listen 80; server_name c.u.test; }',
        'server { listen 443 ssl; server_name c.u.test *.c.u.test; ssl_certificate {{DIR}}/old/fullchain.pem; ssl_certificate_key {{DIR}}/old/privkey.pem; }',
      ].join('\n') + '\n',
    );
    const installer = createNginxInstaller({ ...DEFAULT_CONFIG, stateDir: path.join(t.dir, 'state'), nginx: { ...DEFAULT_CONFIG.nginx, config: t.main } });
    const tree = installer.load();
    expect(installer.uncoveredNames(tree, ['a.u.test', 'www.a.u.test', 'b.u.test'])).toEqual([
      { block: expect.objectContaining({ file: t.site, line: 1 }), names: ['old.u.test'] },
    ]);
    // the TLS block holds the certificate (not the port-80 one): its wildcard is what the certificate leaves out
    expect(installer.uncoveredNames(tree, ['c.u.test'])).toEqual([{ block: expect.objectContaining({ line: 4 }), names: ['*.c.u.test'] }]);
    expect(installer.uncoveredNames(tree, ['nothing.u.test'])).toEqual([]);
  });

  it('servedFiles: the TLS block nginx picks for a name and the certificate files it names, resolved, variables left out', async () => {
    const t = await makeTree(
      [
        'server { listen 80; server_name plain.s.test; }',
        'server { listen 443 ssl; server_name tls.s.test; ssl_certificate old/fullchain.pem; ssl_certificate_key old/privkey.pem; ssl_certificate {{DIR}}/old-rsa/fullchain.pem; ssl_certificate_key {{DIR}}/old-rsa/privkey.pem; }',
        'server { listen [::]:8443 ssl; server_name var.s.test; ssl_certificate {{DIR}}/$ssl_server_name.pem; ssl_certificate_key {{DIR}}/$ssl_server_name.key; }',
      ].join('\n') + '\n',
    );
    const installer = createNginxInstaller({ ...DEFAULT_CONFIG, stateDir: path.join(t.dir, 'state'), nginx: { ...DEFAULT_CONFIG.nginx, config: t.main } });
    const tree = installer.load();
    expect(installer.servedFiles(tree, 'tls.s.test')).toEqual({
      answered: true,
      block: expect.objectContaining({ file: t.site, line: 2 }),
      endpoint: { host: '127.0.0.1', port: 443 },
      certificates: [
        { path: path.join(t.dir, 'old/fullchain.pem'), file: t.site, line: 2 },
        { path: path.join(t.dir, 'old-rsa/fullchain.pem'), file: t.site, line: 2 },
      ],
      variable: false,
    });
    expect(installer.servedFiles(tree, 'plain.s.test')).toEqual({ answered: true, block: null, endpoint: null, certificates: [], variable: false });
    const variable = installer.servedFiles(tree, 'var.s.test');
    expect(variable).toEqual({
      answered: true,
      block: expect.objectContaining({ line: 3 }),
      endpoint: { host: '::1', port: 8443 },
      certificates: [],
      variable: true,
    });
    expect(installer.servedFiles(tree, 'none.s.test')).toEqual({ answered: false, block: null, endpoint: null, certificates: [], variable: false });
    expect(installer.configErrors(tree)).toEqual([]);
  });

  it('sites: the names accept() takes, one entry per block that would hold their certificate, in config order', async () => {
    const t = await makeTree(
      [
        'server { listen 80; server_name a.s2.test www.a.s2.test *.w.s2.test ~^re; root /srv/a; }',
        'server { listen 80; server_name b.s2.test; root /srv/b; }',
        'server { listen 443 ssl; server_name b.s2.test; ssl_certificate {{DIR}}/old/fullchain.pem; ssl_certificate_key {{DIR}}/old/privkey.pem; }',
      ].join('\n') + '\n',
    );
    const installer = createNginxInstaller({ ...DEFAULT_CONFIG, stateDir: path.join(t.dir, 'state'), nginx: { ...DEFAULT_CONFIG.nginx, config: t.main } });
    const sites = installer.sites(installer.load(), (raw) => (raw.includes('*') || raw.startsWith('~') ? null : raw));
    expect(sites.map(({ names, block, root, certificate }) => ({ names, line: block.line, root, certificate }))).toEqual([
      { names: ['a.s2.test', 'www.a.s2.test'], line: 1, root: '/srv/a', certificate: null },
      // the TLS block holds b's certificate; its root is the port-80 block's, the first naming b
      { names: ['b.s2.test'], line: 3, root: '/srv/b', certificate: path.join(t.dir, 'old/fullchain.pem') },
    ]);
    expect(sites[1]!.answered()).toEqual(['b.s2.test']); // over TLS; the TLS block answers nothing on port 80
  });
});
