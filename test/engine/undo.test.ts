/**
 * Undo steps: a plugin that changes something outside nginx's files records how to undo it before acting; a run
 * killed with SIGKILL in the middle leaves the step pending, and `autossl recover` runs it exactly once (and
 * restores the vhost the run had edited).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

const PLUGIN = `import fs from 'node:fs';
export default (options) => ({
  name: 'world-changer',
  apply(hooks, api) {
    api.undo.handle('mark', async (payload) => { fs.appendFileSync(payload.file, 'undone ' + payload.what + '\\n'); });
    hooks.beforeIssue.tapPromise('world-changer', async (ctx) => {
      await api.undo.record(ctx, 'mark', { file: options.undoLog, what: ctx.domain });
      fs.writeFileSync(options.ready, 'changed the world');
      await new Promise(() => {}); // hangs here until the process is killed
    });
  },
});
`;

describe('undo steps', () => {
  it('a step recorded before the process was SIGKILLed is run by autossl recover, once, and the vhost restored', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name undo.example.test;\n    location / {\n        proxy_pass http://127.0.0.1:9;\n    }\n}\n',
    );
    const ready = path.join(t.dir, 'ready');
    const undoLog = path.join(t.dir, 'undo.log');
    fs.writeFileSync(path.join(t.dir, 'world-changer.mjs'), PLUGIN);
    const config = path.join(t.dir, 'autossl.config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        certbot: { binary: '/bin/false', configDir: path.join(t.dir, 'le') },
        nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')], reloadCommand: ['/bin/true'] },
        stateDir: path.join(t.dir, 'state'),
        challengeDir: path.join(t.dir, 'acme'),
        plugins: [['./world-changer.mjs', { ready, undoLog }]],
      }),
    );
    const before = sha256(fs.readFileSync(t.site));
    const run = execa('node', [CLI, 'issue', 'undo.example.test', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80', '--config', config], {
      reject: false,
    });
    await expect.poll(() => fs.existsSync(ready), { timeout: 20_000, message: `${ready} never appeared` }).toBe(true);
    // the challenge stage had added its location (the app proxies everything): the run is mid-way
    expect(sha256(fs.readFileSync(t.site))).not.toBe(before);
    run.kill('SIGKILL');
    await run;
    expect(fs.existsSync(undoLog)).toBe(false);
    const recover = await execa('node', [CLI, 'recover', '--json', '--config', config], { reject: false });
    expect(recover.exitCode, recover.stdout + recover.stderr).toBe(0);
    const report = parseJson(recover.stdout) as { restored: string[]; undo: { ran: Array<{ plugin: string; kind: string }> } };
    expect(report.undo.ran).toEqual([expect.objectContaining({ plugin: 'world-changer', kind: 'mark' })]);
    expect(report.restored).toEqual([t.site]);
    expect(fs.readFileSync(undoLog, 'utf8')).toBe('undone undo.example.test\n');
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    // once: a second recover has nothing to do
    const again = parseJson((await execa('node', [CLI, 'recover', '--json', '--config', config])).stdout) as { restored: string[]; undo: { ran: unknown[] } };
    expect(again.undo.ran).toEqual([]);
    expect(again.restored).toEqual([]);
    expect(fs.readFileSync(undoLog, 'utf8')).toBe('undone undo.example.test\n');
  });
});
