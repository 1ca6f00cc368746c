/**
 * What a process's main thread is blocked in, sampled from outside every few ms (/proc/PID/task/PID: its state,
 * the syscall it is in, its kernel wait channel). bench/agent-batch runs it on the agent during the batch and names,
 * for each long stall of the agent's loop (bench/loop-monitor), what the thread slept in while it was neither
 * running nor waiting for a CPU: a lock shared with another thread (futex_do_wait in futex), the mmap lock
 * (rwsem_down_read_slowpath, lock_mm_and_find_vma: a page fault while another thread maps or forks), a disk flush
 * (fsync), SQLite's busy wait (nanosleep). Linux only; a bench helper, not part of autossl.
 */
import fs from 'node:fs';

/** x86_64 numbers of the syscalls worth a name here; others print as their number. */
const SYSCALLS: Record<string, string> = {
  '-1': 'no syscall (page fault)',
  '0': 'read',
  '1': 'write',
  '3': 'close',
  '7': 'poll',
  '9': 'mmap',
  '10': 'mprotect',
  '11': 'munmap',
  '35': 'nanosleep',
  '56': 'clone',
  '57': 'fork',
  '58': 'vfork',
  '59': 'execve',
  '74': 'fsync',
  '75': 'fdatasync',
  '82': 'rename',
  '202': 'futex',
  '230': 'clock_nanosleep',
  '232': 'epoll_wait',
  '257': 'openat',
  '281': 'epoll_pwait',
  '435': 'clone3',
};

interface Sample {
  t: number;
  /** null: running or runnable; 'idle': asleep in epoll_wait (nothing to do); else "wchan in syscall" */
  blocked: string | null;
}

export interface BlockedSampler {
  /** ms between samples (the estimate of each sample's share of the time) */
  readonly periodMs: number;
  stop(): void;
  /** Estimated ms blocked in each place between `from` and `to` (Date.now() values), most first. */
  between(from: number, to: number): Array<{ in: string; ms: number }>;
}

export function sampleBlocked(pid: number, periodMs = 5): BlockedSampler {
  const dir = `/proc/${pid}/task/${pid}`;
  const samples: Sample[] = [];
  const read = (f: string): string => {
    try {
      return fs.readFileSync(`${dir}/${f}`, 'utf8').trim();
    } catch {
      return '';
    }
  };
  const timer = setInterval(() => {
    const stat = read('stat');
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state !== 'S' && state !== 'D') return void samples.push({ t: Date.now(), blocked: null });
    const nr = read('syscall').split(' ')[0] ?? '';
    const wchan = read('wchan') || '?';
    const idle = (nr === '232' || nr === '281') && wchan === 'do_epoll_wait';
    samples.push({ t: Date.now(), blocked: idle ? 'idle' : `${wchan} in ${SYSCALLS[nr] ?? (nr === 'running' ? 'user space' : `syscall ${nr}`)}` });
  }, periodMs);
  return {
    periodMs,
    stop: () => clearInterval(timer),
    between(from, to) {
      const ms = new Map<string, number>();
      let prev = from;
      for (const s of samples) {
        if (s.t <= from) continue;
        if (s.t > to) break;
        // each sample stands for the time since the one before (the sampler is late too on a loaded machine)
        if (s.blocked && s.blocked !== 'idle') ms.set(s.blocked, (ms.get(s.blocked) ?? 0) + (s.t - prev));
        prev = s.t;
      }
      return [...ms].map(([k, v]) => ({ in: k, ms: v })).sort((a, b) => b.ms - a.ms);
    },
  };
}
