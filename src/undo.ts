/**
 * Undo steps: how a plugin that changes something outside nginx's files (a DNS record, a CDN setting) makes sure
 * it is changed back. Before acting, the plugin records what would undo it (`api.undo.record`); the step is in
 * the state store before the world changes. The pipeline runs a run's pending steps in reverse on failure
 * (`failure` and `always` steps) and after success (`always` steps); `autossl recover` and the start of every
 * command that changes things run the steps a killed process left behind. Each step runs until it succeeds, and
 * never again after that.
 *
 * Handlers are registered by kind in the plugin's `apply` (`api.undo.handle`), so a fresh process that loads the
 * same config can run steps recorded by another one.
 */
import { AutoSslError, toAutoSslError } from './errors.js';
import { ownerAlive } from './lock.js';
import type { JsonValue, UndoHandle, UndoWhen } from './pipeline/context.js';
import type { Store, UndoStepRow } from './store/store.js';

export type UndoHandler = (payload: JsonValue) => Promise<void>;

export interface UndoRunReport {
  ran: Array<{ id: number; plugin: string; kind: string }>;
  failed: Array<{ id: number; plugin: string; kind: string; error: AutoSslError }>;
  /** Steps of live processes, left to them. */
  active: number;
}

const MAX_PAYLOAD = 64 * 1024;

export class UndoService {
  private readonly handlers = new Map<string, UndoHandler>();

  constructor(private readonly state: () => Store) {}

  handle(plugin: string, kind: string, handler: UndoHandler): void {
    const key = `${plugin}\u0000${kind}`;
    if (this.handlers.has(key))
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin "${plugin}" registers the undo kind "${kind}" twice.`, { details: { plugin } });
    this.handlers.set(key, handler);
  }

  /** Records a step for `runId` before the plugin acts. */
  async record(plugin: string, runId: string, kind: string, payload: JsonValue, when: UndoWhen = 'always', owner?: string): Promise<UndoHandle> {
    if (!this.handlers.has(`${plugin}\u0000${kind}`)) {
      throw new AutoSslError(
        'PLUGIN_ERROR',
        `Plugin "${plugin}" records an undo step of kind "${kind}" without a handler for it (api.undo.handle("${kind}", ...) in apply).`,
        { details: { plugin } },
      );
    }
    const text = JSON.stringify(payload);
    if (text === undefined || text.length > MAX_PAYLOAD)
      throw new AutoSslError('PLUGIN_ERROR', `Plugin "${plugin}": an undo payload must be JSON of at most ${MAX_PAYLOAD} bytes.`, { details: { plugin } });
    const state = this.state();
    if (state.readOnly)
      throw new AutoSslError('STATE_UNAVAILABLE', `Cannot record an undo step: autossl's state (${state.location}) is read-only.`, {
        details: { path: state.location },
      });
    const id = await state.undo.add({ runId, plugin, kind, payload: text, when, owner });
    return {
      id,
      run: async () => {
        const row = (await state.undo.list({ runId })).find((s) => s.id === id);
        if (row) await this.runStep(row);
      },
      done: async () => state.undo.finish(id),
    };
  }

  private async runStep(row: UndoStepRow): Promise<AutoSslError | null> {
    const state = this.state();
    const handler = this.handlers.get(`${row.plugin}\u0000${row.kind}`);
    if (!handler) {
      return new AutoSslError('UNDO_FAILED', `An undo step of plugin "${row.plugin}" (${row.kind}) is pending, but that plugin is not loaded in this config.`, {
        hint: `Add the plugin "${row.plugin}" back to the config, then run "autossl recover".`,
        details: { plugin: row.plugin, step: row.id },
      });
    }
    if (!(await state.undo.claim(row.id))) return null; // done meanwhile, or another live process runs it
    try {
      await handler(JSON.parse(row.payload) as JsonValue);
      await state.undo.finish(row.id);
      return null;
    } catch (error) {
      const e = toAutoSslError(error);
      await state.undo.finish(row.id, `${e.code}: ${e.message}`);
      return new AutoSslError('UNDO_FAILED', `Plugin "${row.plugin}" could not undo ${row.kind}: ${e.message}`, {
        details: { plugin: row.plugin, step: row.id, cause: e.code },
      });
    }
  }

  private async runRows(rows: UndoStepRow[]): Promise<UndoRunReport> {
    const report: UndoRunReport = { ran: [], failed: [], active: 0 };
    for (const row of rows) {
      const error = await this.runStep(row);
      if (error) report.failed.push({ id: row.id, plugin: row.plugin, kind: row.kind, error });
      else report.ran.push({ id: row.id, plugin: row.plugin, kind: row.kind });
    }
    return report;
  }

  /** After a run: on failure every pending step of the run, newest first; on success its `always` steps. */
  async finishRun(runId: string, ok: boolean): Promise<UndoRunReport> {
    const state = this.state();
    if (state.readOnly) return { ran: [], failed: [], active: 0 };
    const rows = await state.undo.list({ runId, state: 'pending' });
    if (ok) for (const row of rows.filter((r) => r.when === 'failure')) await state.undo.finish(row.id);
    return this.runRows(ok ? rows.filter((r) => r.when === 'always') : rows);
  }

  /** Runs the steps that processes which died left pending (or running), newest first. */
  async recover(): Promise<UndoRunReport> {
    const state = this.state();
    if (state.readOnly) return { ran: [], failed: [], active: 0 };
    const rows = await state.undo.list({ state: 'open' });
    const orphaned = rows.filter((r) => !ownerAlive(r.owner));
    const report = await this.runRows(orphaned);
    report.active = rows.length - orphaned.length;
    return report;
  }

  /** Pending steps (for reports of read-only commands). */
  async pending(): Promise<UndoStepRow[]> {
    return (await this.state().undo.list({ state: 'open' })).filter((r) => !ownerAlive(r.owner));
  }
}
