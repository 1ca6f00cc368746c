/** The fleet's records (issue 24) in PostgreSQL, the database the nodes share (same rows as src/store/sqlite/fleet.ts). */
import type { FleetChallengeRow, FleetLineageRow, FleetNodeRow, FleetServedRow, FleetStore } from '../store.js';
import { rowToFleetLineage } from '../rows.js';
import type { Db } from './db.js';

export class PgFleet implements FleetStore {
  constructor(private readonly db: Db) {}

  async heartbeat(node: string, at = Date.now()): Promise<void> {
    await this.db.query('INSERT INTO fleet_nodes (node, seen_at) VALUES ($1, $2) ON CONFLICT (node) DO UPDATE SET seen_at = excluded.seen_at', [node, at]);
  }

  async nodes(): Promise<FleetNodeRow[]> {
    return (await this.db.query<{ node: string; seen_at: number }>('SELECT node, seen_at FROM fleet_nodes ORDER BY node COLLATE "C"')).rows.map((r) => ({
      node: r.node,
      seenAt: r.seen_at,
    }));
  }

  async publishChallenge(row: FleetChallengeRow): Promise<void> {
    await this.db.query(
      'INSERT INTO fleet_challenges (token, content, node, at) VALUES ($1, $2, $3, $4) ON CONFLICT (token) DO UPDATE SET content = excluded.content, node = excluded.node, at = excluded.at',
      [row.token, row.content, row.node, row.at],
    );
  }

  async withdrawChallenge(token: string): Promise<void> {
    await this.db.tx(async (q) => {
      await q('DELETE FROM fleet_challenges WHERE token = $1', [token]);
      await q('DELETE FROM fleet_acks WHERE token = $1', [token]);
    });
  }

  async challenges(): Promise<FleetChallengeRow[]> {
    return (await this.db.query<FleetChallengeRow>('SELECT token, content, node, at FROM fleet_challenges ORDER BY at, token COLLATE "C"')).rows;
  }

  async ack(token: string, node: string): Promise<void> {
    await this.db.query('INSERT INTO fleet_acks (token, node, at) SELECT token, $1, $2 FROM fleet_challenges WHERE token = $3 ON CONFLICT DO NOTHING', [
      node,
      Date.now(),
      token,
    ]);
  }

  async acks(token: string): Promise<string[]> {
    return (await this.db.query<{ node: string }>('SELECT node FROM fleet_acks WHERE token = $1 ORDER BY node COLLATE "C"', [token])).rows.map((r) => r.node);
  }

  async putLineage(row: FleetLineageRow): Promise<void> {
    await this.db.query(
      `INSERT INTO fleet_lineages (id, names, serial, not_after, cert, chain, fullchain, key, node, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
      ON CONFLICT (id) DO UPDATE SET names = excluded.names, serial = excluded.serial, not_after = excluded.not_after, cert = excluded.cert, chain = excluded.chain,
        fullchain = excluded.fullchain, key = excluded.key, node = excluded.node, at = excluded.at
      WHERE excluded.serial <> fleet_lineages.serial AND (excluded.not_after > fleet_lineages.not_after OR (excluded.not_after = fleet_lineages.not_after AND excluded.at > fleet_lineages.at))`,
      [row.id, JSON.stringify(row.names), row.serial, row.notAfter, row.cert, row.chain, row.fullchain, row.key, row.node, row.at],
    );
  }

  async lineageSerials(): Promise<Array<{ id: string; serial: string }>> {
    return (await this.db.query<{ id: string; serial: string }>('SELECT id, serial FROM fleet_lineages ORDER BY id COLLATE "C"')).rows;
  }

  async lineage(id: string): Promise<FleetLineageRow | null> {
    const r = (await this.db.query('SELECT * FROM fleet_lineages WHERE id = $1', [id])).rows[0];
    return r ? rowToFleetLineage(r) : null;
  }

  async reportServed(rows: readonly FleetServedRow[]): Promise<void> {
    if (rows.length === 0) return;
    await this.db.tx(async (q) => {
      for (const r of rows)
        await q(
          'INSERT INTO fleet_served (node, lineage, serial, error, at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT (node, lineage) DO UPDATE SET serial = excluded.serial, error = excluded.error, at = excluded.at',
          [r.node, r.lineage, r.serial, r.error, r.at],
        );
    });
  }

  async served(): Promise<FleetServedRow[]> {
    return (await this.db.query<FleetServedRow>('SELECT node, lineage, serial, error, at FROM fleet_served ORDER BY lineage COLLATE "C", node COLLATE "C"'))
      .rows;
  }
}
