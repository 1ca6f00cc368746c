/**
 * The tree cache (issue 20, item 7): a batch loads the tree several times per domain; an unchanged tree is
 * returned as loaded (a stat per input, no index rebuilt: the agent's loop stays free), and any change to what it
 * was built from (a file edited, added or removed under an include glob, a snippet that appears) is seen at once.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NginxTree } from '../../src/nginx/tree.js';

function tree(): { dir: string; main: string } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-treecache-'));
  fs.mkdirSync(path.join(dir, 'sites'));
  const main = path.join(dir, 'nginx.conf');
  fs.writeFileSync(main, `events {}\nhttp {\n    include ${dir}/sites/*.conf;\n    include ${dir}/extra.conf;\n}\n`);
  for (let i = 1; i <= 50; i++) fs.writeFileSync(path.join(dir, 'sites', `s${i}.conf`), `server {\n    listen 80;\n    server_name s${i}.cache.test;\n}\n`);
  return { dir, main };
}

const names = (t: NginxTree): string[] => t.servers.flatMap((s) => s.names).sort();

describe('nginx tree cache', () => {
  it('an unchanged tree is the same tree; an edit, a new file, a removed file and a file that appears are seen', () => {
    const { dir, main } = tree();
    try {
      const first = NginxTree.load(main);
      expect(first.servers).toHaveLength(50);
      expect(first.errors.map((e) => e.message).join()).toContain('extra.conf'); // not there yet
      expect(NginxTree.load(main)).toBe(first);
      // an edit written as autossl writes (a new file renamed over the old one)
      fs.writeFileSync(path.join(dir, 'sites', 's1.conf.tmp'), 'server {\n    listen 80;\n    server_name edited.cache.test;\n}\n');
      fs.renameSync(path.join(dir, 'sites', 's1.conf.tmp'), path.join(dir, 'sites', 's1.conf'));
      const edited = NginxTree.load(main);
      expect(edited).not.toBe(first);
      expect(names(edited)).toContain('edited.cache.test');
      expect(names(edited)).not.toContain('s1.cache.test');
      // written in place, same size
      fs.writeFileSync(path.join(dir, 'sites', 's2.conf'), 'server {\n    listen 80;\n    server_name t2.cache.test;\n}\n');
      expect(names(NginxTree.load(main))).toContain('t2.cache.test');
      fs.writeFileSync(path.join(dir, 'sites', 'new.conf'), 'server {\n    listen 80;\n    server_name new.cache.test;\n}\n');
      expect(names(NginxTree.load(main))).toContain('new.cache.test');
      fs.unlinkSync(path.join(dir, 'sites', 'new.conf'));
      expect(names(NginxTree.load(main))).not.toContain('new.cache.test');
      fs.writeFileSync(path.join(dir, 'extra.conf'), 'server {\n    listen 80;\n    server_name extra.cache.test;\n}\n');
      const withExtra = NginxTree.load(main);
      expect(withExtra.errors).toEqual([]);
      expect(names(withExtra)).toContain('extra.cache.test');
      expect(NginxTree.load(main)).toBe(withExtra);
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a glob through a symlinked directory is never served from the cache (its target can change unseen)', () => {
    const { dir, main } = tree();
    try {
      fs.mkdirSync(path.join(dir, 'a'));
      fs.mkdirSync(path.join(dir, 'b'));
      fs.writeFileSync(path.join(dir, 'a', 'x.conf'), 'server {\n    listen 80;\n    server_name a.link.test;\n}\n');
      fs.writeFileSync(path.join(dir, 'b', 'x.conf'), 'server {\n    listen 80;\n    server_name b.link.test;\n}\n');
      fs.symlinkSync(path.join(dir, 'a'), path.join(dir, 'linked'));
      fs.writeFileSync(path.join(dir, 'extra.conf'), `include ${dir}/linke*/*.conf;\n`);
      expect(names(NginxTree.load(main))).toContain('a.link.test');
      fs.unlinkSync(path.join(dir, 'linked'));
      fs.symlinkSync(path.join(dir, 'b'), path.join(dir, 'linked'));
      const after = NginxTree.load(main);
      expect(names(after)).toContain('b.link.test');
      expect(names(after)).not.toContain('a.link.test');
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
