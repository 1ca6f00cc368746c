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
});
