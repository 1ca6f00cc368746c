/**
 * The fleet's view, from any node: per certificate (as published in the store), per node, the serial it serves
 * (as the node last reported it). A node serving another serial than the published one is `mismatch`; one that
 * reported nothing (or could not be reached over TLS) `unknown`; a node whose heartbeat stopped is `down`.
 */
import type { FleetStore } from '../store/store.js';
import type { FleetSettings } from './config.js';

export type FleetNodeState = 'ok' | 'mismatch' | 'unknown' | 'down';

export interface FleetStatus {
  nodes: Array<{ node: string; seenAt: number; live: boolean }>;
  certificates: Array<{
    lineage: string;
    names: string[];
    serial: string;
    publishedBy: string;
    nodes: Array<{ node: string; serial: string | null; state: FleetNodeState; error?: string; at: number | null }>;
  }>;
  /** Certificates where some live node does not serve the published serial. */
  mismatches: number;
}

export async function fleetStatus(fleet: FleetStore, settings: FleetSettings, now = Date.now()): Promise<FleetStatus> {
  const nodes = (await fleet.nodes()).map((n) => ({ ...n, live: now - n.seenAt <= settings.liveMs }));
  const served = await fleet.served();
  const certificates: FleetStatus['certificates'] = [];
  let mismatches = 0;
  for (const { id } of await fleet.lineageSerials()) {
    const row = await fleet.lineage(id);
    if (!row) continue;
    const per = nodes.map((n) => {
      const s = served.find((x) => x.node === n.node && x.lineage === id);
      const state: FleetNodeState = !n.live ? 'down' : !s || s.serial === null ? 'unknown' : s.serial === row.serial ? 'ok' : 'mismatch';
      return { node: n.node, serial: s?.serial ?? null, state, ...(s?.error ? { error: s.error } : {}), at: s?.at ?? null };
    });
    if (per.some((p) => p.state === 'mismatch' || p.state === 'unknown')) mismatches++;
    certificates.push({ lineage: id, names: row.names, serial: row.serial, publishedBy: row.node, nodes: per });
  }
  return { nodes, certificates, mismatches };
}

export function formatFleetStatus(s: FleetStatus): string[] {
  const lines = [`fleet: ${s.nodes.map((n) => `${n.node}${n.live ? '' : ' (down)'}`).join(', ') || 'no node has reported'}`];
  for (const c of s.certificates) {
    lines.push(`${c.lineage}  serial ${c.serial}  (${c.names.join(', ')}; published by ${c.publishedBy})`);
    for (const n of c.nodes) lines.push(`  ${n.node.padEnd(16)} ${n.state.padEnd(9)} ${n.serial ?? '-'}${n.error ? `  ${n.error}` : ''}`);
  }
  return lines;
}
