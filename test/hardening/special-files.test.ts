/**
 * Issue 12, defect 2: special files are never read to the end. `include /dev/zero;`, an included FIFO, a cert.pem
 * symlinked to a FIFO, an oversized file, and globs through symlinked directory loops each end quickly with a coded
 * error (or a correct answer) instead of eating memory or hanging. Each case runs in a child process with a time
 * and memory limit (see isolated.ts): before the fix they were killed there.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { CATCH, dist, runIsolated } from './isolated.js';

const MAIN = (body: string) => `events {}\nhttp {\n${body}\n}\n`;

function tempTree(files: Record<string, string>): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-special-'));
  for (const [rel, text] of Object.entries(files)) {
    fs.mkdirSync(path.dirname(path.join(dir, rel)), { recursive: true });
    fs.writeFileSync(path.join(dir, rel), text);
  }
  return dir;
}

interface TreeOutcome {
  errors: Array<{ code: string; message: string }>;
  servers: Array<{ file: string; names: string[] }>;
}

/** Loads the tree in a child; the answer is what NginxTree.load saw. */
async function loadTree(main: string) {
  return runIsolated<TreeOutcome>(`
import { NginxTree } from ${dist('nginx/tree.js')};
const tree = NginxTree.load(${JSON.stringify(main)});
console.log(JSON.stringify({ errors: tree.errors.slice(0, 5).map((e) => ({ code: e.code, message: e.message })), servers: tree.servers.map((s) => ({ file: s.file, names: s.names })) }));
`);
}

function mkfifo(file: string): void {
  execFileSync('mkfifo', [file]);
}

describe('special files in the nginx tree', () => {
  it('include /dev/zero is refused as a character device, without reading it', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN('  include /dev/zero;\n  server { listen 80; server_name zero.test; }') });
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    expect(run.result?.errors).toEqual([
      expect.objectContaining({ code: 'NGINX_PARSE_ERROR', message: expect.stringMatching(/\/dev\/zero.*character device/) }),
    ]);
    expect(run.result?.servers.map((s) => s.names)).toEqual([['zero.test']]);
    expect(run.ms).toBeLessThan(5_000);
  });

  it('an included FIFO does not block: it is refused as a FIFO', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN('  include pipe.conf;\n  server { listen 80; server_name fifo.test; }') });
    mkfifo(path.join(dir, 'pipe.conf'));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    expect(run.result?.errors).toEqual([expect.objectContaining({ code: 'NGINX_PARSE_ERROR', message: expect.stringMatching(/pipe\.conf.*FIFO/) })]);
    expect(run.ms).toBeLessThan(5_000);
  });

  it('a config file over the size cap is refused by size, not read', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN('  include big.conf;') });
    const big = path.join(dir, 'big.conf');
    fs.writeFileSync(big, '#'.repeat(1023) + '\n');
    fs.truncateSync(big, 16 * 1024 * 1024 + 1); // sparse: the size is what counts
    const run = await runIsolated<{ direct: { code?: string; message?: string } }>(`
import { readConfigFile } from ${dist('nginx/tree.js')};
${CATCH}
console.log(JSON.stringify({ direct: outcome(() => readConfigFile(${JSON.stringify(big)}) && 'read') }));
`);
    expect(run.result?.direct).toEqual({ code: 'NGINX_PARSE_ERROR', message: expect.stringContaining(`${big}: is 16777217 bytes`) });
  });
});

describe('special files as certificates', () => {
  it('a cert.pem symlinked to a FIFO, or to /dev/zero, is FILE_UNSAFE for both readers; vhost refs do not block', async () => {
    const dir = tempTree({});
    const live = path.join(dir, 'le', 'live', 'fifo.test');
    fs.mkdirSync(live, { recursive: true });
    mkfifo(path.join(dir, 'pipe'));
    fs.symlinkSync(path.join(dir, 'pipe'), path.join(live, 'cert.pem'));
    fs.symlinkSync('/dev/zero', path.join(live, 'zero.pem'));
    fs.mkdirSync(path.join(dir, 'le', 'renewal'));
    mkfifo(path.join(dir, 'le', 'renewal', 'fifo.test.conf'));
    const cert = path.join(live, 'cert.pem');
    fs.writeFileSync(path.join(dir, 'nginx.conf'), MAIN(`  server { listen 443 ssl; server_name fifo.test; ssl_certificate ${cert}; }`));
    const run = await runIsolated<Record<string, { code?: string; message?: string; ok?: unknown }>>(`
import { readLineage } from ${dist('certbot/lineage.js')};
import { readCertificate, readCertificateQuick } from ${dist('issuer/certificate.js')};
import { vhostCertificateRefs } from ${dist('renewal/scan.js')};
import { NginxTree } from ${dist('nginx/tree.js')};
import { sslCertificateLines } from ${dist('nginx/locate.js')};
${CATCH}
console.log(JSON.stringify({
  full: outcome(() => readCertificate(${JSON.stringify(cert)})),
  quick: outcome(() => readCertificateQuick(${JSON.stringify(cert)})),
  zero: outcome(() => readCertificateQuick(${JSON.stringify(path.join(live, 'zero.pem'))})),
  lineage: outcome(() => readLineage(${JSON.stringify(path.join(dir, 'le'))}, 'fifo.test')),
  refs: outcome(() => vhostCertificateRefs(sslCertificateLines(NginxTree.load(${JSON.stringify(path.join(dir, 'nginx.conf'))})), ${JSON.stringify(path.join(dir, 'le'))}).map((r) => r.missing)),
}));
`);
    expect(run.timedOut).toBe(false);
    expect(run.result).toEqual({
      full: { code: 'FILE_UNSAFE', message: expect.stringContaining('FIFO') },
      quick: { code: 'FILE_UNSAFE', message: expect.stringContaining('FIFO') },
      zero: { code: 'FILE_UNSAFE', message: expect.stringContaining('character device') },
      lineage: { ok: null }, // a renewal config that cannot be read is no lineage, as a missing one
      refs: { ok: [false] },
    });
  });

  it('a PEM over 1 MiB is refused by size', async () => {
    const dir = tempTree({});
    const pem = path.join(dir, 'cert.pem');
    fs.writeFileSync(pem, '');
    fs.truncateSync(pem, 1024 * 1024 + 1);
    const run = await runIsolated<{ quick: { code?: string } }>(`
import { readCertificateQuick } from ${dist('issuer/certificate.js')};
${CATCH}
console.log(JSON.stringify({ quick: outcome(() => readCertificateQuick(${JSON.stringify(pem)})) }));
`);
    expect(run.result?.quick).toEqual({ code: 'FILE_UNSAFE', message: expect.stringContaining('1048577 bytes') });
  });
});

describe('globs through symlinked directory loops', () => {
  it('d/up -> .. under "include d/*/*.conf": the main file comes back under its own name, an include loop', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN('  include d/*/*.conf;\n  server { listen 80; server_name up.test; }'), 'd/.keep': '' });
    fs.symlinkSync('..', path.join(dir, 'd', 'up'));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    expect(run.result?.errors).toEqual([
      expect.objectContaining({ code: 'NGINX_PARSE_ERROR', message: `${path.join(dir, 'nginx.conf')}: includes itself (include loop)` }),
    ]);
    expect(run.result?.servers).toEqual([{ file: path.join(dir, 'nginx.conf'), names: ['up.test'] }]);
  });

  it('a file including itself through nine symlinks to ".." ends at once (it explored every order of them)', async () => {
    const dir = tempTree({
      'nginx.conf': MAIN('  include d/*.conf;'),
      'd/site.conf': 'include d/*/d/site.conf;\nserver { listen 80; server_name loop.test; }\n',
    });
    for (const l of 'abcdefghi') fs.symlinkSync('..', path.join(dir, 'd', l));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    expect(run.result?.errors).toEqual([expect.objectContaining({ message: `${path.join(dir, 'd/site.conf')}: includes itself (include loop)` })]);
    expect(run.result?.servers).toEqual([{ file: path.join(dir, 'd/site.conf'), names: ['loop.test'] }]);
    expect(run.ms).toBeLessThan(5_000);
  });

  it('twelve wildcard levels through six self-loops walk each directory once (6^12 paths before)', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN(`  include d/${'*/'.repeat(12)}*.conf;`), 'd/site.conf': 'server { listen 80; server_name deep.test; }\n' });
    for (let i = 0; i < 6; i++) fs.symlinkSync('.', path.join(dir, 'd', `l${i}`));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    // the one file, under its real name, once
    expect(run.result).toEqual({ errors: [], servers: [{ file: path.join(dir, 'd/site.conf'), names: ['deep.test'] }] });
  });

  it('nine symlinks to one file that includes their glob: one match per file, the loop found at once', async () => {
    const dir = tempTree({ 'nginx.conf': MAIN('  include d/*.conf;'), 'x.conf': 'include d/*.conf;\nserver { listen 80; server_name links.test; }\n' });
    fs.mkdirSync(path.join(dir, 'd'));
    for (const l of 'abcdefghi') fs.symlinkSync('../x.conf', path.join(dir, 'd', `${l}.conf`));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.timedOut).toBe(false);
    expect(run.result?.errors).toEqual([expect.objectContaining({ message: `${path.join(dir, 'd/a.conf')}: includes itself (include loop)` })]);
    expect(run.result?.servers).toEqual([{ file: path.join(dir, 'd/a.conf'), names: ['links.test'] }]);
    expect(run.ms).toBeLessThan(5_000);
  });

  it('an ordinary symlinked site directory still loads, named by its real path, one block however many links lead to it', async () => {
    const dir = tempTree({
      'nginx.conf': MAIN('  include sites/*/*.conf;'),
      'apps/shop/nginx/site.conf': 'server { listen 127.0.0.1:80; server_name shop.test; }\n',
    });
    fs.mkdirSync(path.join(dir, 'sites'));
    fs.symlinkSync('../apps/shop/nginx', path.join(dir, 'sites', 'shop'));
    fs.symlinkSync('../apps/shop/nginx', path.join(dir, 'sites', 'shop-again'));
    const run = await loadTree(path.join(dir, 'nginx.conf'));
    expect(run.result).toEqual({ errors: [], servers: [{ file: path.join(dir, 'apps/shop/nginx/site.conf'), names: ['shop.test'] }] });
  });
});
