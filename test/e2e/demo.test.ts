/**
 * The README's first command: the demo issues three certificates through the real pipeline (pebble, certbot,
 * nginx on 127.0.0.1 of a network namespace of its own), exits 0, and removes its sandbox and namespace; with
 * --keep it leaves the sandbox running with a config file the other commands take. It takes no port of the host
 * (a server's own nginx on :80 keeps answering), and installs or stops nothing when packages are missing.
 */
import fs from 'node:fs';
import http from 'node:http';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it, vi } from 'vitest';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

const namespaces = async (): Promise<string[]> =>
  (await execa('ip', ['netns', 'list'])).stdout
    .split('\n')
    .map((l) => l.split(' ')[0]!)
    .filter((n) => n.startsWith('autossl-demo-'));

describe('autossl demo', () => {
  it('runs in a network namespace of its own: a server already on 127.0.0.1:80 keeps answering, nothing is stopped', async () => {
    const server = http.createServer((_req, res) => res.end('the host nginx\n'));
    await new Promise<void>((resolve, reject) => server.once('error', reject).listen(80, '127.0.0.1', resolve));
    const answers = async (): Promise<string> => (await fetch('http://127.0.0.1/')).text();
    try {
      expect(await answers()).toBe('the host nginx\n');
      const before = await namespaces();
      const run = await execa('node', [CLI, 'demo'], { reject: false, timeout: 180_000 });
      expect(run.exitCode, run.stdout + run.stderr).toBe(0);
      expect(await answers()).toBe('the host nginx\n');
      // the curl lines reach the sandbox inside its namespace, which is gone afterwards
      expect(run.stdout).toMatch(
        /^ {5}ip netns exec autossl-demo-\S+ curl --cacert \S+ --resolve static\.demo\.test:443:127\.0\.0\.1 https:\/\/static\.demo\.test\/$/m,
      );
      expect(await namespaces()).toEqual(before);
    } finally {
      server.close();
    }
  }, 200_000);

  it('Ctrl-C in the middle: the demo stops, nothing it started keeps running, its namespace is gone', async () => {
    const before = await namespaces();
    const run = execa('node', [CLI, 'demo'], { reject: false, detached: true, buffer: false });
    let out = '';
    const ns = await new Promise<string | undefined>((resolve) => {
      run.stdout!.on('data', (c: Buffer) => {
        out += c.toString();
        const m = /in the network namespace (\S+):/.exec(out);
        if (m) resolve(m[1]);
      });
      void run.then(() => resolve(undefined));
    });
    expect(ns, out).toBeTruthy();
    const inode = fs.statSync(`/run/netns/${ns}`).ino;
    process.kill(-run.pid!, 'SIGINT'); // the terminal's Ctrl-C reaches the whole process group
    const done = await run;
    expect(done.exitCode).not.toBe(0);
    expect(await namespaces()).toEqual(before);
    // every process still in that namespace (found by its inode, the name is gone)
    const ours = fs
      .readdirSync('/proc')
      .filter((p) => /^\d+$/.test(p))
      .filter((p) => {
        try {
          return fs.readlinkSync(`/proc/${p}/ns/net`) === `net:[${inode}]`;
        } catch {
          return false;
        }
      });
    expect(ours).toEqual([]);
  }, 120_000);

  it('with pebble missing it says how to install it, and installs or stops nothing', async () => {
    const bin = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-demo-bin-'));
    const marker = path.join(bin, 'ran');
    try {
      for (const tool of ['apt-get', 'apt', 'systemctl', 'service'])
        fs.writeFileSync(path.join(bin, tool), `#!/bin/sh\necho "${tool} $*" >> ${marker}\n`, { mode: 0o755 });
      // pebble hidden in a private mount namespace: /usr/bin as an overlay whose upper layer deletes it
      for (const d of ['upper', 'work']) fs.mkdirSync(path.join(bin, d));
      const script = `mknod ${bin}/upper/pebble c 0 0 && mount -t overlay overlay -o lowerdir=/usr/bin,upperdir=${bin}/upper,workdir=${bin}/work /usr/bin && test ! -e /usr/bin/pebble && exec ${process.execPath} ${CLI} demo`;
      const run = await execa('unshare', ['-m', '--propagation', 'private', 'sh', '-c', script], {
        reject: false,
        timeout: 60_000,
        env: { PATH: `${bin}:${process.env.PATH}`, AUTOSSL_PEBBLE: '' },
      }); // (the suite's own pebble is sid's: the demo runs Debian's)
      expect(run.exitCode).not.toBe(0);
      expect(run.stderr + run.stdout).toMatch(/apt-get install -y --no-upgrade [^\n]*pebble/);
      expect(fs.existsSync(marker) ? fs.readFileSync(marker, 'utf8') : '').toBe('');
    } finally {
      fs.rmSync(bin, { recursive: true, force: true });
    }
  }, 60_000);

  it('issues the three demo sites, exits 0 and leaves nothing behind', async () => {
    const rigs = () => new Set(fs.readdirSync(os.tmpdir()).filter((f) => f.startsWith('autossl-rig-')));
    const before = rigs();
    const run = await execa('node', [CLI, 'demo'], { reject: false, timeout: 180_000 });
    expect(run.exitCode, run.stdout + run.stderr).toBe(0);
    for (const d of ['static.demo.test', 'php.demo.test', 'app.demo.test'])
      expect(run.stdout).toMatch(new RegExp(`^ok {3}${d.replace(/\./g, '\\.')} -> .*fullchain\\.pem`, 'm'));
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
      // the printed lines work as printed: curl and the other commands, inside the sandbox's namespace
      const curl = /^ {5}(ip netns exec \S+ curl .*static\.demo\.test\/)$/m.exec(run.stdout)?.[1];
      expect(curl).toBeTruthy();
      expect((await execa('sh', ['-c', `${curl} --silent --show-error`])).stdout).toContain('<h1>static.demo.test</h1>');
      const statusLine = new RegExp(
        `^its config, for the other commands: (ip netns exec \\S+ node \\S+ status --config ${config.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')})$`,
        'm',
      ).exec(run.stdout)?.[1];
      expect(statusLine).toBeTruthy();
      const status = await execa('sh', ['-c', `${statusLine} --json`], { reject: false });
      expect(status.exitCode, status.stdout + status.stderr).toBe(0);
      const lineages = (JSON.parse(status.stdout) as { certificates: Array<{ lineage: string; state: string }> }).certificates
        .filter((c) => c.lineage)
        .map((c) => [c.lineage, c.state])
        .sort();
      expect(lineages).toEqual([
        ['app.demo.test', 'ok'],
        ['php.demo.test', 'ok'],
        ['static.demo.test', 'ok'],
      ]);
    } finally {
      if (dir && fs.existsSync(path.join(dir, 'pids'))) {
        const pids = fs.readFileSync(path.join(dir, 'pids'), 'utf8').split(/\s+/).filter(Boolean).map(Number);
        const alive = (pid: number): boolean => {
          try {
            process.kill(pid, 0);
            return true;
          } catch {
            return false; // gone
          }
        };
        for (const pid of pids) {
          try {
            process.kill(pid, 'SIGTERM');
          } catch {
            // gone already
          }
        }
        // the directory goes once they have exited (or after 10 s, whatever they do)
        await vi.waitUntil(() => !pids.some(alive), { timeout: 10_000, interval: 50 }).catch(() => undefined);
        fs.rmSync(dir, { recursive: true, force: true });
      }
      const ns = /&& ip netns delete (\S+)$/m.exec(run.stdout)?.[1];
      if (ns) await execa('ip', ['netns', 'delete', ns], { reject: false });
    }
  }, 200_000);
});
