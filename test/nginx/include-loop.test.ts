/**
 * Issue 19, found 6: an include loop across two files (a.conf includes b.conf, b.conf includes a.conf) was not
 * detected; the edit was written, `nginx -t` died of SIGSEGV and that was reported as NGINX_NOT_FOUND ("install
 * nginx"). Now the loop is NGINX_PARSE_ERROR naming the files, found while planning (before any write or nginx -t),
 * and an `nginx -t` killed by a signal is NGINX_TEST_FAILED naming the signal.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { NginxControl } from '../../src/nginx/control.js';
import { planChallengeEdit } from '../../src/nginx/edit.js';
import { clearConfigCache, NginxTree } from '../../src/nginx/tree.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const SITE = 'server {\n    listen 80;\n    server_name ok.test;\n    root {{DIR}}/www;\n}\n';

describe('include loops and nginx -t killed by a signal', () => {
  it('a.conf <-> b.conf (one of them by a symlinked name): NGINX_PARSE_ERROR naming both, before anything is written', async () => {
    const t = await makeTree(SITE, { 'loop/a.conf': '# a\n', 'loop/b.conf': '# b\n' });
    const a = path.join(t.dir, 'loop', 'a.conf');
    const b = path.join(t.dir, 'loop', 'b.conf');
    fs.symlinkSync(a, path.join(t.dir, 'loop', 'a-link.conf'));
    fs.writeFileSync(a, `include ${b};\n`);
    fs.writeFileSync(b, `include ${path.join(t.dir, 'loop', 'a-link.conf')};\n`); // back to a, under another name
    fs.writeFileSync(path.join(t.dir, 'sites', 'zz.conf'), `include ${a};\n`);
    const before = fs.readFileSync(t.site);
    clearConfigCache();
    const tree = NginxTree.load(t.main);
    expect(tree.loop).toMatchObject({
      code: 'NGINX_PARSE_ERROR',
      message: `include loop across files: ${a} includes ${b} includes ${path.join(t.dir, 'loop', 'a-link.conf')}`,
    });
    // the site itself is fine, and still its edit is refused: nginx cannot load this config at all
    let error: unknown;
    try {
      planChallengeEdit(tree, ['ok.test'], { fallbackWebroot: path.join(t.dir, 'acme') });
    } catch (e) {
      error = e;
    }
    expect(error).toMatchObject({
      code: 'NGINX_PARSE_ERROR',
      message: expect.stringContaining(a),
      details: { files: [a, b, path.join(t.dir, 'loop', 'a-link.conf')] },
    });
    expect((error as Error).message).toContain(b);
    expect(fs.readFileSync(t.site)).toEqual(before);
  });

  it('nginx -t killed by a signal is NGINX_TEST_FAILED naming it, not NGINX_NOT_FOUND', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-sig-'));
    try {
      const fake = path.join(dir, 'nginx');
      fs.writeFileSync(fake, '#!/bin/sh\nkill -SEGV $$\n', { mode: 0o755 });
      const control = new NginxControl({ binary: fake, config: path.join(dir, 'nginx.conf') });
      await expect(control.test()).rejects.toMatchObject({ code: 'NGINX_TEST_FAILED', message: expect.stringContaining('SIGSEGV') });
      // a binary that is not there is still NGINX_NOT_FOUND
      await expect(new NginxControl({ binary: path.join(dir, 'absent'), config: 'x' }).test()).rejects.toMatchObject({ code: 'NGINX_NOT_FOUND' });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('the real nginx on an include loop: whatever it dies of, never NGINX_NOT_FOUND', async () => {
    const t = await makeTree(SITE, { 'loop/a.conf': '# a\n', 'loop/b.conf': '# b\n' });
    const a = path.join(t.dir, 'loop', 'a.conf');
    const b = path.join(t.dir, 'loop', 'b.conf');
    fs.writeFileSync(a, `include ${b};\n`);
    fs.writeFileSync(b, `include ${a};\n`);
    fs.writeFileSync(path.join(t.dir, 'sites', 'zz.conf'), `include ${a};\n`);
    await expect(t.control.test()).rejects.toMatchObject({ code: 'NGINX_TEST_FAILED' });
  }, 60_000);
});
