/**
 * The agent's batch thread (a worker_threads Worker; see batch-thread.ts for why): an engine of its own, made from
 * the agent's config, runs the batches the agent's intake starts. Messages in: `issue` (the domains, the options
 * that are data, the sites the agent knows now) and `close`. Messages out: each stage event (when asked), each
 * domain's result as it finishes, then `done` (or `failed` when the call itself threw).
 */
import { parentPort, workerData } from 'node:worker_threads';
import type { AutoSslConfig } from '../config/schema.js';
import { createAutoSsl, type AutoSsl, type DomainResult, type IssueOptions } from '../engine.js';
import { toAutoSslError } from '../errors.js';
import type { WireError, WireResult, ToThread, FromThread } from './batch-thread.js';

const port = parentPort!;
const post = (m: FromThread): void => port.postMessage(m);

/** An error as data: the class does not cross threads (its code, hint and details would be lost). */
export function wireError(error: unknown): WireError {
  const e = toAutoSslError(error);
  let details: Record<string, unknown> = {};
  try {
    details = JSON.parse(JSON.stringify(e.details ?? {})) as Record<string, unknown>;
  } catch {
    details = {};
  }
  return { code: e.code, message: e.message, hint: e.hint, details };
}

function wireResult(r: DomainResult): WireResult {
  return { ...r, error: r.error ? wireError(r.error) : undefined };
}

const engine: Promise<AutoSsl> = createAutoSsl((workerData as { config: AutoSslConfig }).config, { recovered: true });
engine.catch(() => undefined); // reported to each call

port.on('message', (m: ToThread) => {
  if (m.type === 'close') {
    void engine
      .then((e) => e.close())
      .catch(() => undefined)
      .finally(() => port.close());
    return;
  }
  void run(m);
});

async function run(m: Extract<ToThread, { type: 'issue' }>): Promise<void> {
  try {
    const e = await engine;
    // the sites a panel described since this thread started (registerSite in the agent's thread)
    e.config.sites.splice(0, e.config.sites.length, ...m.sites);
    // each result is sent once, as it finishes; `done` names them by their order of arrival
    const sent = new WeakMap<object, number>();
    let next = 0;
    const options: IssueOptions = {
      ...m.options,
      ...(m.events ? { onEvent: (event) => post({ type: 'event', id: m.id, event }) } : {}),
      onResult: (r) => {
        sent.set(r.events, next++);
        post({ type: 'result', id: m.id, result: wireResult(r) });
      },
    };
    const results = await e.issue(m.domains, options);
    post({
      type: 'done',
      id: m.id,
      order: results.map((r) => ({ seq: sent.get(r.events) ?? -1, jobId: r.jobId, ...(sent.has(r.events) ? {} : { result: wireResult(r) }) })),
    });
  } catch (error) {
    post({ type: 'failed', id: m.id, error: wireError(error) });
  }
}
