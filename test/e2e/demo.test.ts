/**
 * The README's first command: the demo issues three certificates through the real pipeline (pebble, certbot,
 * nginx on 127.0.0.1), exits 0, and removes its sandbox; with --keep it leaves the sandbox running with a config
 * file the other commands take.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

describe('autossl demo', () => {
  it('issues the three demo sites, exits 0 and leaves nothing behind', async () => {
    const rigs = () => new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('autossl-rig-')));
    const before = rigs();
    const run = await execa('node', [CLI, 'demo'], { reject: false, timeout: 180_000 });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    for (const d of ['static.demo.test', 'php.demo.test', 'app.demo.test']) expect(run.stdout).toMatch(new RegExp(`^ok {3}${d.replace(/\./g, '\\.')} -> .*fullchain\\.pem`, 'm'));
    expect(run.stdout).toContain('sandbox stopped and removed');
    expect([...rigs()].filter((d) => !before.has(d))).toEqual([]);
  }, 200_000);

  it('--keep: the sandbox keeps serving and its config works for the other commands', async () => {
    const run = await execa('node', [CLI, 'demo', '--keep'], { reject: false, timeout: 180_000 });
    const dir = /sandbox left running in (\S+) \(--keep\)/.exec(run.stdout)?.[1];
    try {
      expect(run.exitCode, run.stdout + run.stderr).toBe(0);
      expect(dir).toBeTruthy();
      const config = path.join(dir!, 'autossl.config.json');
      expect(run.stdout).toContain(`status --config ${config}`);
      const status = await execa('node', [CLI, 'status', '--json', '--config', config], { reject: false });
      expect(status.exitCode, status.stdout + status.stderr).toBe(0);
      const lineages = (JSON.parse(status.stdout) as { certificates: Array<{ lineage: string; state: string }> }).certificates.filter((c) => c.lineage).map((c) => [c.lineage, c.state]).sort();
      expect(lineages).toEqual([['app.demo.test', 'ok'], ['php.demo.test', 'ok'], ['static.demo.test', 'ok']]);
    } finally {
      if (dir && fs.existsSync(path.join(dir, 'pids'))) {
        for (const pid of fs.readFileSync(path.join(dir, 'pids'), 'utf8').split(/\s+/).filter(Boolean)) {
          try {
            process.kill(Number(pid), 'SIGTERM');
          } catch {
            // gone already
          }
        }
        await new Promise((r) => setTimeout(r, 1500));
        fs.rmSync(dir, { recursive: true, force: true });
      }
    }
  }, 200_000);
});
