/**
 * The demo's own network namespace. The sandbox needs 127.0.0.1:80 and :443 (pebble validates HTTP-01 on port 80),
 * which a server's own nginx holds: in a namespace of its own the sandbox has a loopback of its own, so it takes
 * no port of the host and stops nothing. The namespace is named (`ip netns`), so the curl lines the demo prints
 * reach it with `ip netns exec <name> curl ...`.
 */
import crypto from 'node:crypto';
import { execa } from 'execa';

/** Set in the demo process that runs inside the namespace: the namespace's name. */
export const NETNS_ENV = 'AUTOSSL_DEMO_NETNS';

/** Creates a named network namespace with its loopback up; null (and why) when this machine does not allow it. */
export async function createNetns(): Promise<{ name: string } | { name: null; why: string }> {
  const name = `autossl-demo-${process.pid}-${crypto.randomBytes(3).toString('hex')}`;
  const add = await execa('ip', ['netns', 'add', name], { reject: false });
  if (add.exitCode !== 0)
    return {
      name: null,
      why: String(add.stderr || add.message || 'failed')
        .trim()
        .split('\n')[0]!
        .slice(0, 300),
    };
  const up = await execa('ip', ['-n', name, 'link', 'set', 'lo', 'up'], { reject: false });
  if (up.exitCode !== 0) {
    await deleteNetns(name);
    return { name: null, why: up.stderr.trim().split('\n')[0]!.slice(0, 300) };
  }
  return { name };
}

/** Removes the namespace's name (processes still inside keep it alive until they exit). Idempotent. */
export async function deleteNetns(name: string): Promise<void> {
  await execa('ip', ['netns', 'delete', name], { reject: false });
}

/**
 * Ends what a killed demo left running inside its namespace (its nginx daemonizes, pebble outlives its parent):
 * only processes in that namespace, which the demo started; SIGTERM, then SIGKILL after 3 s.
 */
export async function stopNetnsProcesses(name: string): Promise<void> {
  const pids = async (): Promise<number[]> =>
    String((await execa('ip', ['netns', 'pids', name], { reject: false })).stdout ?? '')
      .split(/\s+/)
      .filter(Boolean)
      .map(Number)
      .filter((p) => p > 1 && p !== process.pid);
  const signal = (list: number[], sig: NodeJS.Signals): void => {
    for (const pid of list) {
      try {
        process.kill(pid, sig);
      } catch {
        // gone already
      }
    }
  };
  signal(await pids(), 'SIGTERM');
  for (let i = 0; i < 30 && (await pids()).length; i++) await new Promise((r) => setTimeout(r, 100));
  signal(await pids(), 'SIGKILL');
}

/** A command line that runs `argv` inside the namespace (or as is, outside any). */
export function inNetns(name: string | null, argv: string): string {
  return name ? `ip netns exec ${name} ${argv}` : argv;
}
