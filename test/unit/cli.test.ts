/** The command line's contract: exit codes, --all, --json and errors with a code and a hint, never a stack trace. */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../src/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const run = (args: string[]) => execa('node', [CLI, ...args], { reject: false });

describe('cli', () => {
  it('issue --all --dry-run --json covers every configured site and writes nothing', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name one.cli.test;\n    root /var/www/one;\n}\nserver {\n    listen 80;\n    server_name two.cli.test www.two.cli.test;\n    root /var/www/two;\n}\n');
    const config = path.join(t.dir, 'autossl.config.json');
    fs.writeFileSync(config, JSON.stringify({ nginx: { binary: BINARIES.nginx, config: t.main }, certbot: { configDir: path.join(t.dir, 'le') }, stateDir: path.join(t.dir, 'state'), sites: [{ domain: 'one.cli.test' }, { domain: 'two.cli.test', aliases: ['www.two.cli.test'] }] }));
    const before = fs.readFileSync(t.site, 'latin1');
    const r = await run(['issue', '--all', '--dry-run', '--json', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80', '--config', config]);
    expect(r.exitCode).toBe(0);
    const out = JSON.parse(r.stdout) as { results: Array<{ domain: string; names: string[]; ok: boolean; diffs: string[] }> };
    expect(out.results.map((x) => [x.domain, x.names, x.ok])).toEqual([['one.cli.test', ['one.cli.test'], true], ['two.cli.test', ['two.cli.test', 'www.two.cli.test'], true]]);
    expect(out.results[1]!.diffs[0]).toContain('+    listen 443 ssl http2;');
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    expect(fs.existsSync(path.join(t.dir, 'state', 'state.db'))).toBe(false); // a dry run records nothing
  });

  it('bad usage and bad config exit 2 with a code and a hint, no stack trace', async () => {
    const none = await run(['issue', '--config', '/nonexistent/autossl.json']);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/^error CONFIG_NOT_FOUND: .*\n  hint: /);
    expect(none.stderr).not.toMatch(/\n\s+at /);
    const unknown = await run(['frobnicate']);
    expect(unknown.exitCode).toBe(2);
    expect(unknown.stderr).toContain('unknown command "frobnicate"');
    expect((await run(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });
});
