/** The command line's contract: exit codes, --all, --json and errors with a code and a hint, never a stack trace. */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { httpsListenLines, makeTree, writeTreeConfig } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const run = (args: string[]) => execa('node', [CLI, ...args], { reject: false });

describe('cli', () => {
  it('issue --all --dry-run --json covers every configured site and writes nothing', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name one.cli.test;\n    root /var/www/one;\n}\nserver {\n    listen 80;\n    server_name two.cli.test www.two.cli.test;\n    root /var/www/two;\n}\n',
    );
    const config = writeTreeConfig(t, { sites: [{ domain: 'one.cli.test' }, { domain: 'two.cli.test', aliases: ['www.two.cli.test'] }] });
    const before = fs.readFileSync(t.site, 'latin1');
    const r = await run(['issue', '--all', '--dry-run', '--json', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80', '--config', config]);
    expect(r.exitCode).toBe(0);
    const out = parseJson(r.stdout) as { results: Array<{ domain: string; names: string[]; ok: boolean; diffs: string[] }> };
    expect(out.results.map((x) => [x.domain, x.names, x.ok])).toEqual([
      ['one.cli.test', ['one.cli.test'], true],
      ['two.cli.test', ['two.cli.test', 'www.two.cli.test'], true],
    ]);
    const https = await httpsListenLines(['443']);
    expect(out.results[1]!.diffs[0]).toContain(`+    ${https.listens[0]}`);
    if (https.http2On) expect(out.results[1]!.diffs[0]).toContain('+    http2 on;');
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
    // one line of error and where help is, not the whole usage burying it; a typo gets its likely command
    const typo = await run(['isue', 'a.com']);
    expect([typo.exitCode, typo.stderr.trim().split('\n')]).toEqual([
      2,
      ['error: unknown command "isue"; did you mean "issue"?', 'run "autossl --help" for the commands and their options'],
    ]);
    const option = await run(['status', '--frobnicate']);
    expect([option.exitCode, option.stderr.trim().split('\n')[0]]).toEqual([2, 'error: unknown option "--frobnicate"']);
    const dash = await run(['issue', '-x.com']);
    expect(dash.stderr).toMatch(/^error: unknown option "-x" \(a domain that starts with "-" goes after "--": autossl issue -- -x\.example\.com\)$/m);
    expect((await run(['--version'])).stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
  });

  it('a command that can never finish (a plugin module awaiting forever) ends with exit 1 and says so, never a silent 0', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name stuck.cli.test;\n    root /var/www;\n}\n');
    fs.writeFileSync(path.join(t.dir, 'stuck.mjs'), 'await new Promise(() => {});\nexport default { name: "stuck", apply() {} };\n');
    const config = writeTreeConfig(t, { plugins: ['./stuck.mjs'] });
    const r = await run(['status', '--config', config]);
    expect(r.exitCode).toBe(1);
    expect(r.stderr).toContain('the command stopped without finishing');
  });

  it('a batch shows a progress line on a terminal, plain lines elsewhere (and with NO_COLOR), every stage with --verbose', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name one.p.test;\n    root /var/www/one;\n    location / {\n        proxy_pass http://127.0.0.1:3999;\n    }\n}\nserver {\n    listen 80;\n    server_name two.p.test;\n    root /var/www/two;\n}\n',
    );
    const config = writeTreeConfig(t);
    const args = ['issue', 'one.p.test', 'two.p.test', '--dry-run', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80', '--config', config];
    const plain = await run(args);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toMatch(/^done {2}one\.p\.test \(\d\/2, /m);
    expect(plain.stdout).not.toContain('\r');
    // the challenge edit and the HTTPS edit are two edits of one file: "1 file", counted by file (issue 12, defect 8d)
    expect(plain.stdout).toMatch(/^ok {4}one\.p\.test: would be served over HTTPS \(1 file to change\)/m);
    expect(plain.stdout).not.toMatch(/ challenge +\d/); // no per-stage lines
    const verbose = await run([...args, '--verbose']);
    expect(verbose.stdout).toMatch(/one\.p\.test +challenge +\d/);
    const tty = await execa('script', ['-qec', `node ${CLI} ${args.join(' ')}`, '/dev/null'], { reject: false });
    expect(tty.stdout).toMatch(/\r {2}\d done, \d failed, \d running of 2 /);
    const noColor = await execa('script', ['-qec', `node ${CLI} ${args.join(' ')}`, '/dev/null'], { reject: false, env: { NO_COLOR: '1' } });
    expect(noColor.stdout).not.toMatch(/running of 2/);
    expect(noColor.stdout).toMatch(/done {2}one\.p\.test \(\d\/2, /);
  });
  it('a reader that closes the pipe early (| head -1, | true) gets no stack trace; the command still ends with its own exit code', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name one.pipe.test;\n    root /var/www/one;\n}\nserver {\n    listen 80;\n    server_name two.pipe.test;\n    root /var/www/two;\n}\n',
    );
    const config = writeTreeConfig(t, { sites: [{ domain: 'one.pipe.test' }, { domain: 'two.pipe.test' }] });
    for (const args of [['issue', '--all', '--dry-run', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'], ['status'], ['--help']]) {
      const alone = await run([...args, '--config', config]);
      for (const reader of ['true', 'head -c 1']) {
        const piped = await execa('bash', ['-c', `node ${CLI} ${args.join(' ')} --config ${config} | ${reader}; exit "\${PIPESTATUS[0]}"`], { reject: false });
        expect(piped.stderr, `${args.join(' ')} | ${reader}`).not.toMatch(/EPIPE|\n\s+at /);
        expect(piped.exitCode, `${args.join(' ')} | ${reader}`).toBe(alone.exitCode);
      }
    }
  });
  it('uninstall of a name nothing knows exits 2 (bad input) with VHOST_NOT_FOUND, never a silent 0', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name real.un.test;\n    root /var/www/real;\n}\n');
    const config = writeTreeConfig(t);
    const before = fs.readFileSync(t.site, 'latin1');
    const none = await run(['uninstall', 'nosuch.un.test', '--config', config]);
    expect(none.exitCode).toBe(2);
    expect(none.stderr).toMatch(/^error VHOST_NOT_FOUND: Nothing to uninstall for nosuch\.un\.test/m);
    // a name a block answers, never served over TLS: nothing to do, and it says so
    const plain = await run(['uninstall', 'real.un.test', '--config', config]);
    expect(plain.exitCode).toBe(0);
    expect(plain.stdout).toContain('ok    real.un.test: no vhost change and no certificate deleted');
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    // an unknown job is JOB_NOT_FOUND, not a config problem
    const job = await run(['jobs', 'nosuchjob', '--config', config]);
    expect([job.exitCode, job.stderr.split('\n')[0]]).toEqual([2, 'error JOB_NOT_FOUND: There is no job "nosuchjob".']);
  });

  it('status with an nginx config that cannot be parsed names the parse error, not "not served" with a useless fix', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name brk.st.test;\n    root /var/www/brk;\n');
    const config = writeTreeConfig(t, { sites: [{ domain: 'brk.st.test' }] });
    const r = await run(['status', '--json', '--config', config]);
    expect(r.exitCode).toBe(1);
    const rows = (JSON.parse(r.stdout) as { certificates: Array<{ domain: string; lastError: { code: string; message: string } | null }> }).certificates.filter(
      (c) => c.domain === 'brk.st.test',
    );
    expect(rows.map((c) => c.lastError?.code)).toEqual(['NGINX_PARSE_ERROR']);
    expect(rows[0]!.lastError!.message).toMatch(/site\.conf.*unexpected end of file|site\.conf:\d+/);
    expect(r.stdout).not.toContain('NOT_SERVED');
  });
  it('a port-80 redirect whose target is a variable is refused while planning (no order), not installed into a loop', async () => {
    const t = await makeTree(
      'map $host $vt_target {\n    default https://$host;\n}\nserver {\n    listen 80;\n    server_name v1.loop.test;\n    root /var/www/v1;\n    set $t https://$host$request_uri;\n    return 301 $t;\n}\nserver {\n    listen 80;\n    server_name v2.loop.test;\n    root /var/www/v2;\n    return 301 $vt_target$request_uri;\n}\n',
    );
    const config = writeTreeConfig(t, { sites: [{ domain: 'v1.loop.test' }, { domain: 'v2.loop.test' }] });
    const before = fs.readFileSync(t.site, 'latin1');
    for (const dry of [['--dry-run'], []]) {
      const r = await run(['issue', '--all', '--json', ...dry, '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80', '--config', config]);
      expect(r.exitCode).toBe(1);
      const results = parseJson<{ results: Array<{ domain: string; error?: { code: string; message: string }; stages: Array<{ stage: string }> }> }>(
        r.stdout,
      ).results;
      for (const x of results) {
        expect(x.error?.code, x.domain).toBe('VHOST_UNSUPPORTED');
        expect(x.error?.message).toMatch(/redirect whose target autossl cannot work out .*redirect to itself/);
        expect(x.stages.map((st) => st.stage)).not.toContain('issue'); // refused while planning: certbot never ran
      }
    }
    expect(fs.readFileSync(t.site, 'latin1')).toBe(before);
    expect(fs.existsSync(path.join(t.dir, 'le', 'live'))).toBe(false);
  });
});
