/**
 * Listen options nginx allows once per address:port (ipv6only, reuseport, default_server...): a new TLS listen
 * carries one over only when no other listen on that socket has one, in the tree or added earlier in the same plan.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { newVhostEdit, planHttpsEdit } from '../../src/nginx/edit.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { addHttpsDirectives } from '../../src/stages/vhost-https.js';
import { makeTree } from '../helpers/nginx-fixture.js';

describe('socket options on new TLS listens', () => {
  it('one certificate for names in two blocks that each carry ipv6only: [::]:443 gets it once (issue 12, defect 8a)', async () => {
    // (nginx itself would refuse this input; the point is the planner's rule across the blocks of one plan)
    const t = await makeTree(
      'server {\n    listen [::]:80 ipv6only=off;\n    server_name a.h5.example.test;\n    root /var/www/a;\n}\n\nserver {\n    listen [::]:80 ipv6only=off;\n    server_name b.h5.example.test;\n    root /var/www/b;\n}\n',
    );
    const edit = addHttpsDirectives(
      newVhostEdit(['a.h5.example.test', 'b.h5.example.test']),
      { fullchain: path.join(t.live, 'fullchain.pem'), privkey: path.join(t.live, 'privkey.pem') },
      { port: 443, http2: false },
    );
    const plan = planHttpsEdit(NginxTree.load(t.main), edit, { nginxVersion: [1, 22, 1] });
    const after = plan.edits[0]!.after;
    expect(after.match(/listen \[::\]:443 ssl ipv6only=off;/g)).toHaveLength(1);
    expect(after.match(/listen \[::\]:443 ssl;/g)).toHaveLength(1);
    void fs;
  });

  it('a real h5bp-style pair passes nginx -t after the edit', async () => {
    const t = await makeTree(
      'server {\n    listen [::]:80 default_server ipv6only=off;\n    server_name h5.example.test;\n    root /var/www/h5;\n}\n\nserver {\n    listen [::]:80;\n    server_name www.h5.example.test;\n    return 301 http://h5.example.test$request_uri;\n}\n',
    );
    const edit = addHttpsDirectives(
      newVhostEdit(['h5.example.test', 'www.h5.example.test']),
      { fullchain: path.join(t.live, 'fullchain.pem'), privkey: path.join(t.live, 'privkey.pem') },
      { port: 443, http2: false },
    );
    const plan = planHttpsEdit(NginxTree.load(t.main), edit, { nginxVersion: [1, 22, 1] });
    for (const e of plan.edits) fs.writeFileSync(e.file, e.after, 'latin1');
    await expect(t.control.test()).resolves.toBeUndefined();
    expect(fs.readFileSync(t.site, 'latin1').match(/ipv6only=off/g)).toHaveLength(2); // the port-80 one, and one on 443
  });
});
