/**
 * The agent's batch process (a child of the agent with an IPC channel; see batch-thread.ts for why): an engine of
 * its own, made from the agent's config, runs the batches the agent's intake starts. Messages in: `start` (the
 * config and the agent's owner stamp, first), `issue` (the domains, the options that are data, the sites the agent
 * knows now) and `close`. Messages out: each stage event (when asked), each domain's result as it finishes, then
 * `done` (or `failed` when the call itself threw).
 */
import { createAutoSsl, type AutoSsl, type DomainResult, type IssueOptions } from '../engine.js';
import { toAutoSslError } from '../errors.js';
import { adoptOwnerStamp } from '../lock.js';
import type { WireError, WireResult, ToThread, FromThread } from './batch-thread.js';

// the agent gone, nothing is sent (this process is ending: see 'disconnect'); a send that fails meanwhile is dropped
const post = (m: FromThread): void => {
  if (process.connected) process.send?.(m, undefined, {}, () => undefined);
};

/** An error as data: the class does not cross processes (its code, hint and details would be lost). */
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

// the agent gone (kill -9 included): this process goes with it at once, as a thread of the agent would, and
// leaves what it was doing to the next start's recovery (its locks and journals carry the agent's stamp)
process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));
// a stop of the agent's service or a Ctrl-C reaches this process too (the same cgroup, the same process group):
// the agent decides (its running jobs get their time to finish, then it says `close`, or it is gone)
for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP'] as const) process.on(signal, () => undefined);

let engine: Promise<AutoSsl> | null = null;

process.on('message', (m: ToThread) => {
  if (m.type === 'start') {
    adoptOwnerStamp(m.owner);
    engine = createAutoSsl(m.config, { recovered: true });
    engine.catch(() => undefined); // reported to each call
    return;
  }
  if (m.type === 'close') {
    void (engine ?? Promise.resolve(null))
      .then((e) => e?.close())
      .catch(() => undefined)
      .finally(() => process.disconnect?.());
    return;
  }
  void run(m);
});
post({ type: 'ready' });

async function run(m: Extract<ToThread, { type: 'issue' }>): Promise<void> {
  try {
    if (!engine) throw new Error('the batch process was given a batch before its config');
    const e = await engine;
    // the sites a panel described since this process started (registerSite in the agent)
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
