/**
 * When is a reload done? `nginx -s reload` (or `systemctl reload nginx`) only signals the master and exits. The
 * master then reads the config, starts new workers and, about 100 ms later, tells the old ones to quit. Until an
 * old worker has handled that, it still accepts connections on the shared listening sockets and answers them with
 * the OLD config: a check that saw the new certificate once (from a new worker) can be followed by a client that
 * gets the old one. So a reload counts as done once every worker that existed before it has stopped accepting:
 * gone, or "worker process is shutting down" (nginx closes a worker's listening sockets before it retitles it).
 *
 * The master is found through the main config's `pid` directive (Debian's nginx.conf and the test rig's both
 * name one). Where it cannot be found or seen (no `pid` line, a master in another pid namespace, no /proc), nothing
 * is waited for: what nginx serves is still checked by the verify stage.
 */
import fs from 'node:fs';
import path from 'node:path';

/** The pid file named by the main config's `pid` directive (absolute, or relative to `-p PREFIX`), or null. */
export function pidFileOf(mainConfig: string, extraArgs: readonly string[] = []): string | null {
  let text: string;
  try {
    text = fs.readFileSync(mainConfig, 'utf8');
  } catch {
    return null;
  }
  // `pid` is a main-context directive: a line of its own at the top level of nginx.conf
  const m = /^[ \t]*pid[ \t]+("[^"]+"|'[^']+'|[^\s;]+)[ \t]*;/m.exec(text.replace(/#[^\n]*/g, ''));
  if (!m) return null;
  const file = m[1]!.replace(/^["']|["']$/g, '');
  if (path.isAbsolute(file)) return file;
  const p = extraArgs.indexOf('-p');
  return p >= 0 && extraArgs[p + 1] ? path.resolve(extraArgs[p + 1]!, file) : null;
}

function readProc(pid: number, file: string): string | null {
  try {
    return fs.readFileSync(`/proc/${pid}/${file}`, 'utf8');
  } catch {
    return null;
  }
}

/** A process's title as nginx set it ("nginx: worker process"), NULs as spaces. */
const title = (pid: number): string | null => readProc(pid, 'cmdline')?.replace(/\0+$/, '').replace(/\0/g, ' ') ?? null;

/** The master's pid, when its pid file names a process that is an nginx master here. */
function masterPid(pidFile: string): number | null {
  let pid: number;
  try {
    pid = Number(fs.readFileSync(pidFile, 'utf8').trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(pid) || pid <= 1) return null;
  return title(pid)?.startsWith('nginx: master process') ? pid : null;
}

/** The master's workers that accept connections now (not those shutting down after an earlier reload). */
export function acceptingWorkers(pidFile: string): number[] {
  const master = masterPid(pidFile);
  if (master === null) return [];
  const workers: number[] = [];
  let entries: string[];
  try {
    entries = fs.readdirSync('/proc');
  } catch {
    return [];
  }
  for (const entry of entries) {
    if (!/^\d+$/.test(entry)) continue;
    const stat = readProc(Number(entry), 'stat');
    // the fields after the command's closing parenthesis: state, ppid, ...
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
    if (ppid === master && title(Number(entry)) === 'nginx: worker process') workers.push(Number(entry));
  }
  return workers;
}

/**
 * Waits until none of `before` (the workers that accepted before the reload) accepts any more; true when that
 * happened, false at the deadline (nginx kept its old workers: the new config failed to load, or the machine is
 * too slow for the deadline). Polls /proc: nginx tells nobody when a worker has quit.
 */
export async function waitOldWorkersRetired(before: readonly number[], timeoutMs: number): Promise<boolean> {
  const started = Date.now();
  const deadline = started + timeoutMs;
  // every 10 ms for the first second: nginx retires the old workers ~100 ms after the reload, and each issue waits
  // on two reloads (a poll doubling from 10 ms first looked at 150 ms); a master slower than that is polled less
  for (let wait = 10; ; wait = Date.now() - started < 1000 ? 10 : Math.min(wait * 2, 100)) {
    if (before.every((pid) => title(pid) !== 'nginx: worker process')) return true;
    if (Date.now() > deadline) return false;
    await new Promise((r) => setTimeout(r, wait));
  }
}
