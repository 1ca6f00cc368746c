/**
 * State faults: a corrupt state.db, a read-only state directory, a state directory that is a file. Commands that
 * change things stop with STATE_UNAVAILABLE naming the path and the fix (never INTERNAL, nothing edited); commands
 * that only read still answer.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { writeLineage } from '../helpers/certs.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const SKIP = ['--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'];

async function setup(stateDir: (dir: string) => string) {
  const t = await makeTree('server {\n    listen 80;\n    server_name state.example.test;\n    root /var/www/s;\n}\n');
  const le = path.join(t.dir, 'le');
  await writeLineage(le, 'state.example.test', 90, 60);
  const state = stateDir(t.dir);
  const config = path.join(t.dir, 'autossl.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      nginx: { binary: BINARIES.nginx, config: t.main, reloadCommand: ['/bin/true'] },
      certbot: { binary: '/bin/false', configDir: le },
      stateDir: state,
    }),
  );
  return { t, config, state };
}

describe('state faults', () => {
  it('a corrupt state.db: issue stops with STATE_UNAVAILABLE naming it and the fix, nothing edited', async () => {
    const { t, config, state } = await setup((d) => path.join(d, 'state'));
    fs.mkdirSync(state);
    fs.writeFileSync(path.join(state, 'state.db'), 'this is not a database '.repeat(200));
    const before = sha256(fs.readFileSync(t.site));
    const run = await execa('node', [CLI, 'issue', 'state.example.test', '--json', ...SKIP, '--config', config], { reject: false });
    expect(run.exitCode).toBe(1);
    // the state store is needed before any domain runs: one error for the command
    const error = (parseJson(run.stdout) as { error: { code: string; message: string; hint: string } }).error;
    expect(error.code).toBe('STATE_UNAVAILABLE');
    expect(error.message).toContain(path.join(state, 'state.db'));
    expect(error.message).toContain('not a valid SQLite database');
    expect(error.hint).toContain('Move');
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    const status = await execa('node', [CLI, 'status', '--config', config], { reject: false });
    expect(status.stderr).toMatch(/^error STATE_UNAVAILABLE: /);
  });

  it('a state directory that is a file: issue refuses with STATE_UNAVAILABLE, status still lists the certificates', async () => {
    const { t, config, state } = await setup((d) => path.join(d, 'state-file'));
    fs.writeFileSync(state, 'a file, not a directory');
    const before = sha256(fs.readFileSync(t.site));
    const run = await execa('node', [CLI, 'issue', 'state.example.test', ...SKIP, '--config', config], { reject: false });
    expect(run.exitCode).toBe(1);
    expect(run.stdout + run.stderr).toMatch(/STATE_UNAVAILABLE: .*state-file/);
    expect(run.stdout + run.stderr).not.toMatch(/INTERNAL|\n\s+at /);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    const status = await execa('node', [CLI, 'status', '--json', '--config', config], { reject: false });
    expect(status.exitCode, status.stderr).toBe(0);
    expect((parseJson(status.stdout) as { certificates: Array<{ lineage: string; state: string }> }).certificates).toEqual([
      expect.objectContaining({ lineage: 'state.example.test', state: 'ok' }),
    ]);
  });

  it('a read-only state directory (a read-only mount): status answers from the database as it is', async () => {
    const { config, state } = await setup((d) => path.join(d, 'state'));
    expect((await execa('node', [CLI, 'recover', '--config', config], { reject: false })).exitCode).toBe(0); // creates the database
    expect((await execa('node', [CLI, 'status', '--config', config], { reject: false })).exitCode).toBe(0); // and records the lineage in it
    const script = `mount --bind ${state} ${state} && mount -o remount,ro,bind ${state} && exec node ${CLI} status --json --config ${config}`;
    const ro = await execa('unshare', ['-m', 'sh', '-c', script], { reject: false });
    expect(ro.exitCode, ro.stderr).toBe(0);
    expect((parseJson(ro.stdout) as { certificates: Array<{ lineage: string }> }).certificates.map((c) => c.lineage)).toEqual(['state.example.test']);
    const issue = await execa('unshare', ['-m', 'sh', '-c', script.replace(`status --json`, `issue state.example.test ${SKIP.join(' ')}`)], { reject: false });
    expect(issue.exitCode).toBe(1);
    expect(issue.stdout + issue.stderr).toContain('STATE_UNAVAILABLE');
  });
});
