/**
 * The agent's batches run in a thread of their own (issue 20, item 7): the agent's event loop answers HTTP and
 * nothing else of a batch runs on it.
 *
 * Why a thread for the whole batch rather than each slow part made incremental: a profiled 200-domain batch on a
 * loaded machine stalled the agent's loop in a dozen places at once (x509 parsing in @peculiar/x509, tree loads and
 * their stats, SQLite writes per stage, DNS pre-flight, hashing, TLS checks, and the garbage collector sweeping the
 * heap all of that filled: one 300 ms pause alone). Making each of them incremental would touch every stage and
 * leave the GC pauses; one Worker with an engine of its own takes all of them off the loop, the heap included,
 * and keeps the engine's code as it is. A child process would do the same, but a Worker shares the process: its
 * memory is the agent's own (what the RSS bars measure), it dies with the agent (kill -9 included, so the next
 * start's recovery finds the runs it left exactly as before: the owner of their journals, locks and jobs is this
 * pid), and nothing new has to be installed or supervised.
 *
 * What is shared with the thread: the state database (SQLite in WAL mode: each thread has its own connection,
 * writers wait on each other for a write's length), the lock files (they hold across threads as across processes),
 * the nginx config and certbot's directories (under those locks). What is sent to it per batch: the domains, the
 * options that are data, and the sites the agent knows now (a panel's registerSite happens on the agent's thread).
 * What comes back: stage events (only when the caller listens), each domain's result as it finishes, then the
 * order of the results. Errors cross as data and are made AutoSslErrors again here.
 *
 * Only `issue` moves: the agent's other calls are one domain each (status reads, an upload, a delete) and stay
 * on its engine. The thread starts with the first batch and ends after IDLE_MS without one (its isolate and engine
 * hold tens of MB that an idle agent has no use for).
 *
 * Under the TypeScript sources (vitest running src/) there is no compiled worker file to start: batches run on the
 * agent's thread as before. The built agent (dist, what `autossl agent` runs) always uses the thread; the agent
 * tests that start `dist/src/cli.js` and bench/agent-batch run it.
 */
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker } from 'node:worker_threads';
import type { AutoSslConfig, SiteConfig } from '../config/schema.js';
import type { AutoSsl, DomainResult, IssueOptions } from '../engine.js';
import { AutoSslError, type ErrorCode } from '../errors.js';
import type { StageEvent } from '../pipeline/context.js';
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

export type ToThread = { type: 'issue'; id: number; domains: string[]; options: WireOptions; events: boolean; sites: SiteConfig[] } | { type: 'close' };

export type FromThread =
  | { type: 'event'; id: number; event: StageEvent }
  | { type: 'result'; id: number; result: WireResult }
  | { type: 'done'; id: number; order: Array<{ seq: number; jobId?: string; result?: WireResult }> }
  | { type: 'failed'; id: number; error: WireError };

/** An idle thread ends after this long. */
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

/** The compiled worker beside this file, or null under the TypeScript sources. */
function workerFile(): URL | null {
  if (!import.meta.url.endsWith('.js')) return null;
  const url = new URL('./batch-thread-worker.js', import.meta.url);
  return fs.existsSync(fileURLToPath(url)) ? url : null;
}

/**
 * The agent's engine with `issue` run in the batch thread (the engine itself is unchanged and answers the rest).
 * `config` is the config the engine was made from: the thread makes its own engine from it.
 */
export function withBatchThread(engine: AutoSsl, config: AutoSslConfig): AutoSsl {
  const jobs = new AgentJobs(engine);
  const file = workerFile();
  if (!file) return engine;
  let worker: Worker | null = null;
  let nextId = 1;
  const calls = new Map<number, Call>();
  let idleTimer: NodeJS.Timeout | null = null;

  /** The thread ended (it never should while working): each call still waiting fails, its job recorded failed. */
  const lost = (w: Worker, why: string): void => {
    if (worker !== w) return;
    worker = null;
    for (const [id, call] of calls) {
      calls.delete(id);
      const done = new Set(call.received.map((r) => r.domain));
      const error = new AutoSslError('INTERNAL', `The agent's batch thread ended: ${why}.`.slice(0, 2000));
      const failed = call.domains
        .filter((d) => !done.has(d))
        .map((d): DomainResult => ({
          domain: d,
          mode: call.options.dryRun ? 'dry-run' : 'issue',
          names: [],
          ok: false,
          error,
          reused: false,
          edits: [],
          files: [],
          rolledBack: [],
          notes: [],
          events: [],
          ms: 0,
        }));
      if (call.options.jobId) {
        for (const r of failed) {
          // the job record is a report
          void jobs.cancelDomain(call.options.jobId, r.domain, `not finished: the agent's batch thread ended (${why})`).catch(() => undefined);
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

  const start = (): Worker => {
    if (idleTimer) {
      clearTimeout(idleTimer);
      idleTimer = null;
    }
    if (worker) return worker;
    const w = new Worker(file, { workerData: { config } });
    w.on('message', (m: FromThread) => {
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
    w.on('exit', (code) => lost(w, `exit code ${code}`));
    worker = w;
    return w;
  };

  /** No batch running: the thread does not keep the process up, and ends after IDLE_MS. */
  const idle = (w: Worker): void => {
    w.unref();
    idleTimer = setTimeout(() => {
      idleTimer = null;
      if (calls.size || worker !== w) return;
      worker = null;
      stop(w);
    }, IDLE_MS).unref();
  };

  /** Its engine closes its database, then the thread ends (terminated if it does not within a few seconds). */
  const stop = (w: Worker): Promise<void> =>
    new Promise<void>((resolve) => {
      w.ref(); // an idle thread is unreferenced: waiting for its exit must keep the process up
      const timer = setTimeout(() => void w.terminate(), 5_000).unref();
      w.once('exit', () => (clearTimeout(timer), resolve()));
      w.postMessage({ type: 'close' } satisfies ToThread);
    });

  return {
    ...engine,
    issue(domains, options = {}) {
      const { onEvent, onResult, ...data } = options;
      void onResult;
      const w = start();
      w.ref();
      const id = nextId++;
      return new Promise<DomainResult[]>((resolve, reject) => {
        calls.set(id, { domains: [...domains], options, received: [], resolve, reject });
        w.postMessage({
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
