/**
 * Processes started off the event loop (src/spawn.ts, issue 20 item 7): what certbot and nginx runs rely on, as
 * execa gave it: exit code, output, a missing binary, a timeout, a signal, stdin and streamed stdout.
 */
import { describe, expect, it } from 'vitest';
import { spawnOffLoop } from '../../src/spawn.js';

describe('spawnOffLoop', () => {
  it('exit code, stdout and stderr; the environment given', async () => {
    const child = spawnOffLoop('/bin/sh', ['-c', 'echo "out $X"; echo err >&2; exit 3'], { env: { ...process.env, X: 'x1' } });
    expect(await child.pid).toBeGreaterThan(1);
    expect(await child.result).toMatchObject({ exitCode: 3, signal: null, stdout: 'out x1\n', stderr: 'err\n', timedOut: false });
  });

  it('a missing binary is an error with its code, not a hang', async () => {
    const r = await spawnOffLoop('/nonexistent/certbot', []).result;
    expect(r.errorCode).toBe('ENOENT');
    expect(r.error).toMatch(/ENOENT/);
  });

  it('a timeout ends it with SIGTERM and says so; a kill is a signal', async () => {
    const slow = await spawnOffLoop('/bin/sleep', ['30'], { timeoutMs: 200 }).result;
    expect(slow).toMatchObject({ timedOut: true, signal: 'SIGTERM', exitCode: null });
    const child = spawnOffLoop('/bin/sleep', ['30']);
    await child.pid;
    child.kill('SIGKILL');
    expect(await child.result).toMatchObject({ timedOut: false, signal: 'SIGKILL' });
  });

  it('stdin written and ended; stdout streamed as it comes', async () => {
    const chunks: string[] = [];
    const child = spawnOffLoop('/bin/sh', ['-c', 'echo ready; read line; echo "got $line"'], { stdin: 'pipe', onStdout: (c) => chunks.push(c) });
    await expect.poll(() => chunks.join('')).toBe('ready\n');
    child.write('hello\n');
    child.end();
    expect((await child.result).stdout).toBe('ready\ngot hello\n');
    expect(chunks.join('')).toBe('ready\ngot hello\n');
  });

  it('many at once, each with its own output', async () => {
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => spawnOffLoop('/bin/echo', [String(i)]).result));
    expect(results.map((r) => r.stdout.trim())).toEqual(Array.from({ length: 20 }, (_, i) => String(i)));
  });
});
