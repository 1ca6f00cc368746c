/** The config tree: includes as nginx resolves them, server_name precedence, and refusal of unparsable files. */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NginxTree, clearConfigCache } from '../../src/nginx/tree.js';
import { newVhostEdit, planChallengeEdit, planHttpsEdit } from '../../src/nginx/edit.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree } from '../helpers/nginx-fixture.js';

describe('nginx config tree', () => {
  it('follows relative includes and globs from the conf prefix; a file included twice is one block', async () => {
    const t = await makeTree('include extra/*.conf;\ninclude extra/b.conf;\n', {
      'extra/a.conf': 'server {\n    listen 80;\n    server_name a.tree.test;\n    include snippets/names.conf;\n}\n',
      'extra/b.conf': 'server {\n    listen 80;\n    server_name b.tree.test;\n}\n',
      'snippets/names.conf': 'server_name alias.tree.test;\nlisten [::]:80;\n',
    });
    const tree = NginxTree.load(t.main);
    expect(tree.findServers('alias.tree.test').http.map((s) => s.file)).toEqual([path.join(t.dir, 'extra/a.conf')]);
    expect(tree.findServers('a.tree.test').http[0]!.listens.map((l) => l.socket)).toEqual(['*:80', '[::]:80']);
    expect(tree.findServers('b.tree.test').http).toHaveLength(1); // included twice, still one block to edit
    await expect(t.control.test()).resolves.toBeUndefined();
  });

  it("picks servers by nginx's precedence: exact, longest leading wildcard, trailing wildcard, first regex", async () => {
    const t = await makeTree(
      [
        'server { listen 80; server_name ~^(www\\.)?p\\.tree\\.test$; }',
        'server { listen 80; server_name www.p.*; }',
        'server { listen 80; server_name *.p.tree.test; }',
        'server { listen 80; server_name .tree.test; }',
        'server { listen 80; server_name www.p.tree.test; }',
      ].join('\n') + '\n',
    );
    const tree = NginxTree.load(t.main);
    const line = (host: string) => tree.findServers(host).http.map((s) => s.config.source.slice(0, s.directive.start).split('\n').length);
    expect(line('www.p.tree.test')).toEqual([5]);
    expect(line('x.p.tree.test')).toEqual([3]);
    expect(line('other.tree.test')).toEqual([4]);
    expect(line('www.p.example')).toEqual([2]);
    expect(line('p.tree.test')).toEqual([4]);
  });

  it('refuses to edit a file it cannot parse, with file:line:column, leaving it untouched', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name ok.tree.test;\n}\n');
    const broken = 'server {\n    listen 80;\n    server_name broken.tree.test;\n    add_header X "unterminated;\n}\n';
    fs.writeFileSync(t.site, broken);
    clearConfigCache();
    const tree = NginxTree.load(t.main);
    expect(tree.errors[0]!.message).toMatch(/site\.conf:4:\d+: unterminated double-quoted string/);
    expect(() => planChallengeEdit(tree, ['broken.tree.test'], { fallbackWebroot: '/tmp' })).toThrow(
      expect.objectContaining({ code: 'NGINX_PARSE_ERROR', message: expect.stringMatching(/site\.conf:4:\d+: unterminated/) }),
    );
    const edit = newVhostEdit(['broken.tree.test']);
    expect(() => planHttpsEdit(tree, edit, { nginxVersion: [1, 22, 1] })).toThrow(
      expect.objectContaining({ code: 'NGINX_PARSE_ERROR', details: expect.objectContaining({ line: 4 }) }),
    );
    expect(sha256(fs.readFileSync(t.site))).toBe(sha256(broken));
  });
  it('follows includes inside a server block when judging the challenge: a snippet\'s "location ~ /\\. { deny all; }" hides it (issue 12, defect 8c)', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name snip.tree.test;\n    root /srv/snip;\n    include {{DIR}}/snippets/deny-dot.conf;\n}\n',
      {
        'sites/plain.conf': 'server {\n    listen 80;\n    server_name plain.tree.test;\n    root /srv/plain;\n}\n',
        'snippets/deny-dot.conf': 'location ~ /\\. {\n    deny all;\n}\n',
      },
    );
    const tree = NginxTree.load(t.main);
    const hidden = planChallengeEdit(tree, ['snip.tree.test'], { fallbackWebroot: '/tmp/acme' });
    // the snippet's regex location would answer 403: a challenge location is added, in the site's own file
    expect(hidden.edits).toHaveLength(1);
    expect(hidden.edits[0]!.file).toBe(t.site);
    expect(hidden.edits[0]!.after).toContain('location ^~ /.well-known/acme-challenge/');
    expect(fs.readFileSync(path.join(t.dir, 'snippets/deny-dot.conf'), 'utf8')).toBe('location ~ /\\. {\n    deny all;\n}\n');
    // without the snippet the static root serves it: no edit
    expect(planChallengeEdit(tree, ['plain.tree.test'], { fallbackWebroot: '/tmp/acme' }).edits).toEqual([]);
  });
});
