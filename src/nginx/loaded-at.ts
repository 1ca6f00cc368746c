/**
 * When the running nginx last read its certificates: its master reads every certificate, then starts its workers,
 * so the newest worker's start time (from /proc) bounds it. The Installer's `loadedAt`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { argValues, childDirectives } from './parse.js';
import type { NginxTree } from './tree.js';

/** Clock ticks per second of /proc/<pid>/stat's start time (USER_HZ: 100 on every Linux build that matters). */
const USER_HZ = 100;

/** The pid file nginx writes: the main config's `pid`, else Debian's and the usual compiled default. */
function pidFile(tree: NginxTree): string {
  const main = tree.files.get(tree.mainFile);
  const pid = main
    ? childDirectives(main, 'pid')
        .map((d) => argValues(d)[0])
        .find(Boolean)
    : undefined;
  if (pid) return path.isAbsolute(pid) ? pid : path.join(tree.prefix, pid);
  return '/run/nginx.pid';
}

/** When the newest of nginx's worker processes started (epoch ms): every certificate it serves was read before. */
export function nginxLoadedAt(tree: NginxTree): number | null {
  try {
    const master = Number(fs.readFileSync(pidFile(tree), 'utf8').trim());
    if (!Number.isInteger(master) || master <= 1) return null;
    const btime = Number(/^btime (\d+)$/m.exec(fs.readFileSync('/proc/stat', 'utf8'))?.[1]);
    if (!btime) return null;
    let newest: number | null = null;
    for (const entry of fs.readdirSync('/proc')) {
      if (!/^\d+$/.test(entry)) continue;
      let stat: string;
      try {
        stat = fs.readFileSync(`/proc/${entry}/stat`, 'utf8');
      } catch {
        continue; // gone meanwhile
      }
      // "pid (comm) state ppid ...": comm may hold spaces and parentheses, so fields count from its last ")"
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== master) continue;
      const started = (btime + Number(fields[19]) / USER_HZ) * 1000;
      if (newest === null || started > newest) newest = started;
    }
    return newest;
  } catch {
    return null;
  }
}
