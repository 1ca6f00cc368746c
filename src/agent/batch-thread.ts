/**
 * The agent's batches run in a process of their own (issue 20, item 7): the agent's event loop answers HTTP and
 * nothing else of a batch runs on it.
 *
 * Why the whole batch elsewhere rather than each slow part made incremental: a profiled 200-domain batch on a
 * loaded machine stalled the agent's loop in a dozen places at once (x509 parsing in @peculiar/x509, tree loads and
 * their stats, SQLite writes per stage, DNS pre-flight, hashing, TLS checks, and the garbage collector sweeping the
 * heap all of that filled: one 300 ms pause alone). One engine of its own elsewhere takes all of them off the loop,
 * the heap included, and keeps the engine's code as it is.
 *
 * Why a process and not a worker thread (what this first was): a thread shares the process's locks with the
 * agent's loop, and on a loaded machine a lock's holder waits for a CPU while holding it. Traced with perf
 * (sched_switch, the agent's main thread's stacks) during bench/agent-batch at 200 domains with both cores busy,
 * the loop stalled for up to 0.7 s at a time blocked, not running, in: libuv's thread-pool queue mutex (every
 * fs call of the loop; the batch's fs calls hold it), the mm's mmap lock (page faults while the batch thread forked
 * certbot/nginx or V8 mapped pages: `rwsem_down_read_slowpath`), glibc's malloc arena locks (freeing what the other
 * thread allocated), the MessagePort mutex and V8's shared platform task queue (GC tasks). A process shares none of
 * them: its messages arrive on a pipe the loop polls.
 *
 * What makes it still work as the agent's own: it runs under the agent's owner stamp (src/lock.ts
 * adoptOwnerStamp): the locks, journals and jobs it holds are the agent's, as they were from a thread; it dies
 * with the agent (its IPC channel closes: kill -9 included), so the next start's recovery finds the runs it left
 * exactly as before. What is shared with it: the state database (SQLite in WAL mode: each process has its own
 * connection, writers wait on each other for a write's length), the lock files, the nginx config and certbot's
 * directories (under those locks). What is sent to it per batch: the domains, the options that are data, and the
 * sites the agent knows now (a panel's registerSite happens in the agent). What comes back: stage events (only
 * when the caller listens), each domain's result as it finishes, then the order of the results. Errors cross as
 * data and are made AutoSslErrors again here. Its memory is its own process's (the agent's RSS is the agent's).
 *
 * Only `issue` moves: the agent's other calls are one domain each (status reads, an upload, a delete) and stay
 * on its engine. The process starts with the first batch and ends after IDLE_MS without one (its engine holds
 * tens of MB that an idle agent has no use for).
 *
 * Under the TypeScript sources (vitest running src/) there is no compiled file to start: batches run on the
 * agent's loop as before. The built agent (dist, what `autossl agent` runs) always uses the process; the agent
 * tests that start `dist/src/cli.js` and bench/agent-batch run it.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { fork, type ChildProcess } from 'node:child_process';
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import type { AutoSsl, DomainResult, IssueOptions } from '../engine.js';
import { AutoSslError, type ErrorCode } from '../errors.js';
import type { StageEvent } from '../pipeline/context.js';
import { ownerStamp } from '../lock.js';
import { failedResult } from '../pipeline/failed-result.js';
import { AgentJobs } from './jobs.js';

export interface WireError {
  code: ErrorCode;
  message: string;
  hint: string;
  details: Record<string, unknown>;
}

export type WireResult = Omit<DomainResult, 'error'> & { error?: WireError };

/** The options of `issue` that are data (the callbacks stay here). */
type WireOptions = Omit<IssueOptions, 'onEvent' | 'onResult'>;

export type ToThread =
  | { type: 'start'; config: AutoSslConfig; owner: string }
  | { type: 'issue'; id: number; domains: string[]; options: WireOptions; events: boolean; sites: SiteConfig[] }
  | { type: 'close' };

export type FromThread =
  | { type: 'event'; id: number; event: StageEvent }
  | { type: 'result'; id: number; result: WireResult }
  | { type: 'done'; id: number; order: Array<{ seq: number; jobId?: string; result?: WireResult }> }
  | { type: 'failed'; id: number; error: WireError }
  | { type: 'ready' };

/** An idle batch process ends after this long. */
const IDLE_MS = 60_000;

interface Call {
  domains: readonly string[];
  options: IssueOptions;
  received: DomainResult[];
  resolve(results: DomainResult[]): void;
  reject(error: Error): void;
}

function fromWire(e: WireError): AutoSslError {
  return new AutoSslError(e.code, e.message, { hint: e.hint, details: e.details });
}

function resultFromWire(r: WireResult): DomainResult {
  return { ...r, error: r.error ? fromWire(r.error) : undefined };
}

/** The compiled batch process's script beside this file, or null under the TypeScript sources. */
function workerFile(): URL | null {
  if (!import.meta.url.endsWith('.js')) return null;
  const url = new URL('./batch-thread-worker.js', import.meta.url);
  return fs.existsSync(fileURLToPath(url)) ? url : null;
}

/**
 * The agent's engine with `issue` run in the batch process (the engine itself is unchanged and answers the rest).
 * `config` is the config the engine was made from: the process makes its own engine from it.
 */
export function withBatchThread(engine: AutoSsl, config: AutoSslConfig): AutoSsl {
  const jobs = new AgentJobs(engine);
  const file = workerFile();
  if (!file) return engine;
  let worker: ChildProcess | null = null;
  /** The messages for a batch process that has not said it is ready yet. */
  const ready = new WeakMap<ChildProcess, ToThread[]>();
  const send = (w: ChildProcess, m: ToThread): void => {
    const held = ready.get(w);
    if (held) held.push(m);
    else if (w.connected) w.send(m);
  };
  let nextId = 1;
  const calls = new Map<number, Call>();
  let idleTimer: NodeJS.Timeout | null = null;

  /** The process ended (it never should while working): each call still waiting fails, its job recorded failed. */
  const lost = (w: ChildProcess, why: string): void => {
    if (worker !== w) return;
    worker = null;
    for (const [id, call] of calls) {
      calls.delete(id);
      const done = new Set(call.received.map((r) => r.domain));
      const error = new AutoSslError('INTERNAL', `The agent's batch process ended: ${why}.`.slice(0, 2000));
      const failed = call.domains.filter((d) => !done.has(d)).map((d) => failedResult(d, call.options.dryRun ? 'dry-run' : 'issue', error));
      if (call.options.jobId) {
        for (const r of failed) {
          // the job record is a report
          void jobs.cancelDomain(call.options.jobId, r.domain, `not finished: the agent's batch process ended (${why})`).catch(() => undefined);
        }
        void jobs.finish(call.options.jobId, 'failed').catch(() => undefined); // as above
      }
      for (const r of failed) {
        try {
          call.options.onResult?.(r);
        } catch {
          // a listener's failure is its own business
        }
      }
      call.reject(error);
    }
  };

  const start = (): ChildProcess => {
    if (idleTimer) {
      clearTimeout(idleTimer);
      idleTimer = null;
    }
    if (worker) return worker;
    // no execArgv of the agent's (a --import preloaded into the agent, a profiler, an inspector port are the
    // agent's); structured clone as a Worker had (the config and results as they are)
    const w = fork(fileURLToPath(file), [], { execArgv: [], serialization: 'advanced', stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    // what is sent before the process listens would be lost: held until it says it is ready
    const held: ToThread[] = [{ type: 'start', config, owner: ownerStamp() }];
    ready.set(w, held);
    w.on('message', (m: FromThread) => {
      if (m.type === 'ready') {
        ready.delete(w);
        for (const h of held) w.send(h);
        return;
      }
      const call = calls.get(m.id);
      if (!call) return;
      if (m.type === 'event') {
        try {
          call.options.onEvent?.(m.event);
        } catch {
          // as above
        }
      } else if (m.type === 'result') {
        const r = resultFromWire(m.result);
        call.received.push(r);
        try {
          call.options.onResult?.(r);
        } catch {
          // as above
        }
      } else {
        calls.delete(m.id);
        if (!calls.size) idle(w);
        if (m.type === 'failed') call.reject(fromWire(m.error));
        else call.resolve(m.order.map((o) => ({ ...(o.result ? resultFromWire(o.result) : call.received[o.seq]!), jobId: o.jobId })));
      }
    });
    w.on('error', (error) => lost(w, error.message));
    w.on('exit', (code, signal) => lost(w, signal ? `signal ${signal}` : `exit code ${code}`));
    worker = w;
    return w;
  };

  /** No batch running: the batch process does not keep the agent up, and ends after IDLE_MS. */
  const idle = (w: ChildProcess): void => {
    w.unref();
    w.channel?.unref();
    idleTimer = setTimeout(() => {
      idleTimer = null;
      if (calls.size || worker !== w) return;
      worker = null;
      stop(w);
    }, IDLE_MS).unref();
  };

  /** Its engine closes its database, then the batch process ends (killed if it does not within a few seconds). */
  const stop = (w: ChildProcess): Promise<void> =>
    new Promise<void>((resolve) => {
      if (w.exitCode !== null || w.signalCode !== null) return resolve();
      w.ref(); // an idle batch process is unreferenced: waiting for its exit must keep the agent up
      w.channel?.ref();
      const timer = setTimeout(() => void w.kill('SIGKILL'), 5_000).unref();
      w.once('exit', () => (clearTimeout(timer), resolve()));
      if (w.connected) send(w, { type: 'close' });
      else w.kill('SIGKILL');
    });

  return {
    ...engine,
    issue(domains, options = {}) {
      const { onEvent, onResult, ...data } = options;
      void onResult;
      const w = start();
      w.ref();
      w.channel?.ref();
      const id = nextId++;
      return new Promise<DomainResult[]>((resolve, reject) => {
        calls.set(id, { domains: [...domains], options, received: [], resolve, reject });
        send(w, {
          type: 'issue',
          id,
          domains: [...domains],
          options: data,
          events: onEvent !== undefined,
          sites: engine.config.sites,
        } satisfies ToThread);
      });
    },
    async close() {
      if (idleTimer) {
        clearTimeout(idleTimer);
        idleTimer = null;
      }
      const w = worker;
      worker = null; // what is still running is left to the next start's recovery, as before
      if (w) await stop(w);
      await engine.close();
    },
  };
}
