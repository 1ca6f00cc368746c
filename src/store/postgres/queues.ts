/** The two queues several processes (and nodes) work off at once, in PostgreSQL: the notification outbox and undo steps. */
import type { OutboxEntry, OutboxRow, OutboxStore, UndoStepRow, UndoStore } from '../store.js';
import { rowToOutbox, rowToOutboxEntry, rowToUndoStep, undoFilter } from '../rows.js';
import type { Db } from './db.js';
import { fleetStamp, type Presence } from './presence.js';

export class PgOutbox implements OutboxStore {
  constructor(
    private readonly db: Db,
    private readonly presence: Presence,
  ) {}

  async enqueue(key: string, kind: string, payload: string, at = Date.now()): Promise<boolean> {
    return (
      (
        await this.db.query('INSERT INTO outbox (key, kind, payload, created_at, next_attempt_at) VALUES ($1, $2, $3, $4, $4) ON CONFLICT (key) DO NOTHING', [
          key,
          kind,
          payload,
          at,
        ])
      ).rowCount === 1
    );
  }

  /** Rows locked while claimed (another deliverer skips them): two processes never send one twice. */
  async claim(now = Date.now(), limit = 100): Promise<OutboxRow[]> {
    await this.presence.ensure();
    return this.db.tx(async (q) => {
      const rows = (
        await q('SELECT * FROM outbox WHERE delivered_at IS NULL AND next_attempt_at <= $1 ORDER BY id LIMIT $2 FOR UPDATE SKIP LOCKED', [now, limit])
      ).rows;
      const claimed: OutboxRow[] = [];
      for (const r of rows) {
        const by = r.claimed_by as string | null;
        if (by && by !== fleetStamp() && (await this.presence.alive(by, q))) continue;
        await q('UPDATE outbox SET claimed_by = $1, claimed_at = $2 WHERE id = $3', [fleetStamp(), now, r.id]);
        const delivered = (await q<{ plugin: string }>('SELECT plugin FROM outbox_deliveries WHERE outbox_id = $1 ORDER BY at, plugin', [r.id])).rows.map(
          (d) => d.plugin,
        );
        claimed.push(rowToOutbox(r, delivered));
      }
      return claimed;
    });
  }

  async markDeliveredTo(id: number, plugin: string): Promise<void> {
    await this.db.query('INSERT INTO outbox_deliveries (outbox_id, plugin, at) VALUES ($1, $2, $3) ON CONFLICT DO NOTHING', [id, plugin, Date.now()]);
  }

  async settle(id: number, result: { delivered: true } | { delivered: false; error: string; retryAt: number }): Promise<void> {
    if (result.delivered)
      await this.db.query('UPDATE outbox SET delivered_at = $1, claimed_by = NULL, attempts = attempts + 1, last_error = NULL WHERE id = $2', [Date.now(), id]);
    else
      await this.db.query('UPDATE outbox SET claimed_by = NULL, attempts = attempts + 1, last_error = $1, next_attempt_at = $2 WHERE id = $3', [
        result.error.slice(0, 2000),
        result.retryAt,
        id,
      ]);
  }

  async list(): Promise<OutboxEntry[]> {
    const rows = (await this.db.query('SELECT * FROM outbox ORDER BY id')).rows;
    return rows.map(rowToOutboxEntry);
  }
}

export class PgUndo implements UndoStore {
  constructor(
    private readonly db: Db,
    private readonly presence: Presence,
  ) {}

  async add(step: { runId: string; plugin: string; kind: string; payload: string; when: 'always' | 'failure'; owner?: string }): Promise<number> {
    if (step.owner === undefined) await this.presence.ensure();
    const r = await this.db.query<{ id: number }>(
      `INSERT INTO undo_steps (run_id, owner, plugin, kind, payload, run_when, state, created_at) VALUES ($1, $2, $3, $4, $5, $6, 'pending', $7) RETURNING id`,
      [step.runId, step.owner ?? fleetStamp(), step.plugin, step.kind, step.payload, step.when, Date.now()],
    );
    return Number(r.rows[0]!.id);
  }

  async list(filter: { runId?: string; state?: 'pending' | 'open' } = {}): Promise<UndoStepRow[]> {
    const { where, args } = undoFilter(filter, (n) => `$${n}`);
    const rows = (await this.db.query(`SELECT * FROM undo_steps ${where} ORDER BY id DESC`, args)).rows;
    return rows.map(rowToUndoStep);
  }

  async claim(id: number): Promise<boolean> {
    await this.presence.ensure();
    return this.db.tx(async (q) => {
      const row = (await q<{ state: string; owner: string }>('SELECT state, owner FROM undo_steps WHERE id = $1 FOR UPDATE', [id])).rows[0];
      if (!row || row.state === 'done') return false;
      if (row.state === 'running' && row.owner !== fleetStamp() && (await this.presence.alive(row.owner, q))) return false;
      await q(`UPDATE undo_steps SET state = 'running', owner = $1, attempts = attempts + 1 WHERE id = $2`, [fleetStamp(), id]);
      return true;
    });
  }

  async finish(id: number, error?: string): Promise<void> {
    if (error === undefined) await this.db.query(`UPDATE undo_steps SET state = 'done', done_at = $1, last_error = NULL WHERE id = $2`, [Date.now(), id]);
    else await this.db.query(`UPDATE undo_steps SET state = 'pending', last_error = $1 WHERE id = $2`, [error.slice(0, 2000), id]);
  }
}
