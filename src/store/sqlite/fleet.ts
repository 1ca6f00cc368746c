/** The fleet's records (issue 24) on SQLite: a fleet of processes on one machine sharing one state.db (tests, dev). */
import type { FleetChallengeRow, FleetLineageRow, FleetNodeRow, FleetServedRow, FleetStore } from '../store.js';
import { rowToFleetLineage } from '../rows.js';
import type { Sql } from './sql.js';

export class SqliteFleet implements FleetStore {
  constructor(private readonly sql: Sql) {}

  async heartbeat(node: string, at = Date.now()): Promise<void> {
    this.sql.st('INSERT INTO fleet_nodes (node, seen_at) VALUES (?, ?) ON CONFLICT(node) DO UPDATE SET seen_at = excluded.seen_at').run(node, at);
  }

  async nodes(): Promise<FleetNodeRow[]> {
    return (this.sql.st('SELECT node, seen_at FROM fleet_nodes ORDER BY node').all() as Array<{ node: string; seen_at: number }>).map((r) => ({
      node: r.node,
      seenAt: r.seen_at,
    }));
  }

  async publishChallenge(row: FleetChallengeRow): Promise<void> {
    this.sql
      .st(
        'INSERT INTO fleet_challenges (token, content, node, at) VALUES (?, ?, ?, ?) ON CONFLICT(token) DO UPDATE SET content = excluded.content, node = excluded.node, at = excluded.at',
      )
      .run(row.token, row.content, row.node, row.at);
  }

  async withdrawChallenge(token: string): Promise<void> {
    this.sql.tx(() => {
      this.sql.st('DELETE FROM fleet_challenges WHERE token = ?').run(token);
      this.sql.st('DELETE FROM fleet_acks WHERE token = ?').run(token);
    });
  }

  async challenges(): Promise<FleetChallengeRow[]> {
    return this.sql.st('SELECT token, content, node, at FROM fleet_challenges ORDER BY at').all() as FleetChallengeRow[];
  }

  async ack(token: string, node: string): Promise<void> {
    this.sql.st('INSERT OR IGNORE INTO fleet_acks (token, node, at) SELECT token, ?, ? FROM fleet_challenges WHERE token = ?').run(node, Date.now(), token);
  }

  async acks(token: string): Promise<string[]> {
    return (this.sql.st('SELECT node FROM fleet_acks WHERE token = ? ORDER BY node').all(token) as Array<{ node: string }>).map((r) => r.node);
  }

  async putLineage(row: FleetLineageRow): Promise<void> {
    this.sql
      .st(
        `INSERT INTO fleet_lineages (id, names, serial, not_after, cert, chain, fullchain, key, node, at)
      VALUES (@id, @names, @serial, @notAfter, @cert, @chain, @fullchain, @key, @node, @at)
      ON CONFLICT(id) DO UPDATE SET names = excluded.names, serial = excluded.serial, not_after = excluded.not_after, cert = excluded.cert, chain = excluded.chain,
        fullchain = excluded.fullchain, key = excluded.key, node = excluded.node, at = excluded.at
      WHERE excluded.serial <> fleet_lineages.serial AND (excluded.not_after > fleet_lineages.not_after OR (excluded.not_after = fleet_lineages.not_after AND excluded.at > fleet_lineages.at))`,
      )
      .run({ ...row, names: JSON.stringify(row.names) });
  }

  async lineageSerials(): Promise<Array<{ id: string; serial: string }>> {
    return this.sql.st('SELECT id, serial FROM fleet_lineages ORDER BY id').all() as Array<{ id: string; serial: string }>;
  }

  async lineage(id: string): Promise<FleetLineageRow | null> {
    const r = this.sql.st('SELECT * FROM fleet_lineages WHERE id = ?').get(id) as Record<string, unknown> | undefined;
    return r ? rowToFleetLineage(r) : null;
  }

  async reportServed(rows: readonly FleetServedRow[]): Promise<void> {
    const st = this.sql.st(
      'INSERT INTO fleet_served (node, lineage, serial, error, at) VALUES (@node, @lineage, @serial, @error, @at) ON CONFLICT(node, lineage) DO UPDATE SET serial = excluded.serial, error = excluded.error, at = excluded.at',
    );
    this.sql.tx(() => {
      for (const r of rows) st.run(r);
    });
  }

  async served(): Promise<FleetServedRow[]> {
    return this.sql.st('SELECT node, lineage, serial, error, at FROM fleet_served ORDER BY lineage, node').all() as FleetServedRow[];
  }
}
