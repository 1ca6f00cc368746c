/** The two queues several processes work off at once: the notification outbox and plugins' undo steps. */
import { ownerAlive, ownerStamp } from '../../lock.js';
import type { OutboxEntry, OutboxRow, OutboxStore, UndoStepRow, UndoStore } from '../store.js';
import { rowToOutbox, rowToOutboxEntry, rowToUndoStep, undoFilter } from '../rows.js';
import type { Sql } from './sql.js';

export class SqliteOutbox implements OutboxStore {
  constructor(private readonly sql: Sql) {}

  async enqueue(key: string, kind: string, payload: string, at = Date.now()): Promise<boolean> {
    return (
      this.sql.st('INSERT OR IGNORE INTO outbox (key, kind, payload, created_at, next_attempt_at) VALUES (?, ?, ?, ?, ?)').run(key, kind, payload, at, at)
        .changes === 1
    );
  }

  /**
   * Claims the notifications due for delivery (not delivered, next attempt reached, not claimed by a live process):
   * two processes delivering at once never send one twice.
   */
  async claim(now = Date.now(), limit = 100): Promise<OutboxRow[]> {
    return this.sql.tx(() => {
      const rows = this.sql.st(`SELECT * FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= ? ORDER BY id LIMIT ?`).all(now, limit) as Array<
        Record<string, unknown>
      >;
      const claimed: OutboxRow[] = [];
      for (const r of rows) {
        const by = r.claimed_by as string | null;
        if (by && by !== ownerStamp() && ownerAlive(by)) continue;
        this.sql.st('UPDATE outbox SET claimed_by = ?, claimed_at = ? WHERE id = ?').run(ownerStamp(), now, r.id);
        const delivered = (this.sql.st('SELECT plugin FROM outbox_deliveries WHERE outbox_id = ?').all(r.id) as Array<{ plugin: string }>).map((d) => d.plugin);
        claimed.push(rowToOutbox(r, delivered));
      }
      return claimed;
    });
  }

  async markDeliveredTo(id: number, plugin: string): Promise<void> {
    this.sql.st('INSERT OR IGNORE INTO outbox_deliveries (outbox_id, plugin, at) VALUES (?, ?, ?)').run(id, plugin, Date.now());
  }

  /** Ends one delivery attempt: delivered to every tap, or to be retried after `retryAt`. */
  async settle(id: number, result: { delivered: true } | { delivered: false; error: string; retryAt: number }): Promise<void> {
    if (result.delivered)
      this.sql.st('UPDATE outbox SET delivered_at = ?, claimed_by = NULL, attempts = attempts + 1, last_error = NULL WHERE id = ?').run(Date.now(), id);
    else
      this.sql
        .st('UPDATE outbox SET claimed_by = NULL, attempts = attempts + 1, last_error = ?, next_attempt_at = ? WHERE id = ?')
        .run(result.error.slice(0, 2000), result.retryAt, id);
  }

  async list(): Promise<OutboxEntry[]> {
    const rows = this.sql.st('SELECT * FROM outbox ORDER BY id').all() as Array<Record<string, unknown>>;
    return rows.map(rowToOutboxEntry);
  }
}

export class SqliteUndo implements UndoStore {
  constructor(private readonly sql: Sql) {}

  async add(step: { runId: string; plugin: string; kind: string; payload: string; when: 'always' | 'failure'; owner?: string }): Promise<number> {
    const r = this.sql
      .st(`INSERT INTO undo_steps (run_id, owner, plugin, kind, payload, run_when, state, created_at) VALUES (?, ?, ?, ?, ?, ?, 'pending', ?)`)
      .run(step.runId, step.owner ?? ownerStamp(), step.plugin, step.kind, step.payload, step.when, Date.now());
    return Number(r.lastInsertRowid);
  }

  async list(filter: { runId?: string; state?: 'pending' | 'open' } = {}): Promise<UndoStepRow[]> {
    const { where, args } = undoFilter(filter, () => '?');
    const rows = this.sql.st(`SELECT * FROM undo_steps ${where} ORDER BY id DESC`).all(...args) as Array<Record<string, unknown>>;
    return rows.map(rowToUndoStep);
  }

  async claim(id: number): Promise<boolean> {
    return this.sql.tx(() => {
      const row = this.sql.st('SELECT state, owner FROM undo_steps WHERE id = ?').get(id) as { state: string; owner: string } | undefined;
      if (!row || row.state === 'done') return false;
      if (row.state === 'running' && ownerAlive(row.owner) && row.owner !== ownerStamp()) return false;
      this.sql.st(`UPDATE undo_steps SET state = 'running', owner = ?, attempts = attempts + 1 WHERE id = ?`).run(ownerStamp(), id);
      return true;
    });
  }

  async finish(id: number, error?: string): Promise<void> {
    if (error === undefined) this.sql.st(`UPDATE undo_steps SET state = 'done', done_at = ?, last_error = NULL WHERE id = ?`).run(Date.now(), id);
    else this.sql.st(`UPDATE undo_steps SET state = 'pending', last_error = ? WHERE id = ?`).run(error.slice(0, 2000), id);
  }
}
