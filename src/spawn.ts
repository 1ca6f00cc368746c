/**
 * Child processes started from a worker thread, off the event loop. Starting a process blocks the thread that
 * starts it until the child has exec'd (libuv forks, then waits for exec): on a loaded machine that is tens to
 * hundreds of ms each, and a batch of hundreds of domains starts a certbot, a lock helper and nginx runs for each.
 * On the agent's loop that was the largest stall in a profiled 200-domain batch; in one worker thread it stalls
 * only that thread. One worker serves the process (created on first use, kept referenced only while a child
 * runs); its code is a string (eval), so it runs the same from dist and from the TypeScript sources under test.
 * Children still running when the process exits are sent SIGTERM, as execa's cleanup does.
 */
import { Worker } from 'node:worker_threads';

export interface SpawnOptions {
  env?: NodeJS.ProcessEnv;
  /** SIGTERM after this long (then SIGKILL 5 s later); the result says timedOut. */
  timeoutMs?: number;
  /** 'pipe': write() and end() feed its stdin. Default 'ignore'. */
  stdin?: 'ignore' | 'pipe';
  /** 'inherit' passes its stderr through to this process's. Default 'pipe' (collected). */
  stderr?: 'pipe' | 'inherit';
  /**
   * Written with its pid the moment it starts, by the worker (a kill of this process right after the start must
   * still leave the pid for the next start to wait on, as a write here after a message would not).
   */
  pidFile?: string;
  /** Called with each chunk of its stdout as it comes (it is collected too). */
  onStdout?: (chunk: string) => void;
}

export interface SpawnResult {
  exitCode: number | null;
  signal: string | null;
  stdout: string;
  stderr: string;
  timedOut: boolean;
  /** Set when the process could not be started (ENOENT, EACCES): the message. */
  error?: string;
  errorCode?: string;
}

export interface OffLoopChild {
  /** Its pid once started (undefined when it could not be started). */
  pid: Promise<number | undefined>;
  result: Promise<SpawnResult>;
  write(data: string): void;
  end(): void;
  kill(signal?: NodeJS.Signals): void;
}

const WORKER_SOURCE = `
const { parentPort } = require('node:worker_threads');
const { spawn } = require('node:child_process');
const children = new Map();
const LIMIT = 16 * 1024 * 1024;
parentPort.on('message', (m) => {
  if (m.type === 'run') {
    let child;
    const out = { stdout: '', stderr: '' };
    let timedOut = false;
    let timer, killer;
    try {
      child = spawn(m.file, m.args, { env: m.env, stdio: [m.stdin, 'pipe', m.stderr] });
    } catch (error) {
      parentPort.postMessage({ id: m.id, type: 'exit', result: { exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, error: String(error && error.message), errorCode: error && error.code } });
      return;
    }
    children.set(m.id, child);
    if (m.pidFile && child.pid) {
      try { require('node:fs').writeFileSync(m.pidFile, String(child.pid)); } catch {}
    }
    parentPort.postMessage({ id: m.id, type: 'pid', pid: child.pid });
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (c) => {
      if (out.stdout.length < LIMIT) out.stdout += c;
      if (m.stream) parentPort.postMessage({ id: m.id, type: 'stdout', chunk: c });
    });
    if (child.stderr) {
      child.stderr.setEncoding('utf8');
      child.stderr.on('data', (c) => { if (out.stderr.length < LIMIT) out.stderr += c; });
    }
    if (child.stdin) child.stdin.on('error', () => {});
    if (m.timeoutMs) timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGTERM');
      killer = setTimeout(() => child.kill('SIGKILL'), 5000);
    }, m.timeoutMs);
    let error;
    child.on('error', (e) => { error = e; });
    child.on('close', (exitCode, signal) => {
      clearTimeout(timer);
      clearTimeout(killer);
      children.delete(m.id);
      parentPort.postMessage({ id: m.id, type: 'exit', result: { exitCode, signal, stdout: out.stdout, stderr: out.stderr, timedOut, error: error && error.message, errorCode: error && error.code } });
    });
  } else {
    const child = children.get(m.id);
    if (!child) return;
    if (m.type === 'write' && child.stdin) child.stdin.write(m.data);
    else if (m.type === 'end' && child.stdin) child.stdin.end();
    else if (m.type === 'kill') child.kill(m.signal);
  }
});
`;

interface Request {
  resolvePid(pid: number | undefined): void;
  resolve(result: SpawnResult): void;
  onStdout?: (chunk: string) => void;
  pid?: number;
}

let worker: Worker | null = null;
let nextId = 1;
const requests = new Map<number, Request>();
/** An idle worker goes after this long: its isolate holds ~10 MB an agent between batches has no use for. */
const IDLE_MS = 5_000;
let idleTimer: NodeJS.Timeout | null = null;

function getWorker(): Worker {
  if (idleTimer) {
    clearTimeout(idleTimer);
    idleTimer = null;
  }
  if (worker) return worker;
  const w = new Worker(WORKER_SOURCE, { eval: true });
  w.unref();
  w.on('message', (m: { id: number; type: string; pid?: number; chunk?: string; result?: SpawnResult }) => {
    const r = requests.get(m.id);
    if (!r) return;
    if (m.type === 'pid') {
      r.pid = m.pid;
      r.resolvePid(m.pid);
    } else if (m.type === 'stdout') r.onStdout?.(m.chunk!);
    else if (m.type === 'exit') {
      requests.delete(m.id);
      if (!requests.size) {
        w.unref();
        idleTimer = setTimeout(() => {
          idleTimer = null;
          if (requests.size || worker !== w) return;
          worker = null;
          void w.terminate();
        }, IDLE_MS).unref();
      }
      r.resolvePid(undefined);
      r.resolve(m.result!);
    }
  });
  w.on('error', (error) => {
    // the worker itself failed (it never should): every child waiting on it is reported failed
    worker = null;
    for (const [id, r] of requests) {
      requests.delete(id);
      r.resolvePid(undefined);
      r.resolve({ exitCode: null, signal: null, stdout: '', stderr: '', timedOut: false, error: `the process worker failed: ${error.message}` });
    }
  });
  worker = w;
  return w;
}

process.once('exit', () => {
  for (const r of requests.values()) {
    try {
      if (r.pid) process.kill(r.pid, 'SIGTERM');
    } catch {
      // gone already
    }
  }
});

/** Starts `file` with `args` from the worker thread (no shell). */
export function spawnOffLoop(file: string, args: readonly string[], options: SpawnOptions = {}): OffLoopChild {
  const w = getWorker();
  const id = nextId++;
  let resolvePid!: (pid: number | undefined) => void;
  const pid = new Promise<number | undefined>((r) => (resolvePid = r));
  const result = new Promise<SpawnResult>((resolve) => {
    requests.set(id, { resolvePid, resolve, onStdout: options.onStdout });
  });
  w.ref();
  w.postMessage({
    id,
    type: 'run',
    file,
    args: [...args],
    env: options.env ?? process.env,
    timeoutMs: options.timeoutMs ?? 0,
    stdin: options.stdin ?? 'ignore',
    stderr: options.stderr ?? 'pipe',
    stream: options.onStdout !== undefined,
    pidFile: options.pidFile,
  });
  return {
    pid,
    result,
    write: (data) => w.postMessage({ id, type: 'write', data }),
    end: () => w.postMessage({ id, type: 'end' }),
    kill: (signal = 'SIGTERM') => w.postMessage({ id, type: 'kill', signal }),
  };
}
