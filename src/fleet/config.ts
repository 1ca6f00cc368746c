/**
 * A fleet (issue 24, README "Several nodes"): several nginx nodes behind one name (a balancer or round-robin DNS)
 * sharing one store. Design, and why:
 *
 * - Challenges go through the store, each node serving them as static files. The ordering node's certbot runs
 *   HTTP-01 as `--manual` with autossl's hooks (`autossl fleet-hook auth|cleanup`, kept in the lineage's renewal
 *   config, so certbot's own renewals do the same): the auth hook writes the token into this node's webroot,
 *   publishes it to the store and returns only when every live node (heartbeat younger than fleet.liveMs) has
 *   written it into its own challenge directory and acknowledged. The CA's requests, spread by the balancer, then
 *   find the token whichever node they reach. Not nginx proxying to the agent: a token served as a file keeps
 *   working while the agent restarts, nothing new listens on any node, and the ack tells the ordering node the
 *   token is there before the CA is told to look (a proxied read could meet a node whose agent is down).
 *   Polling, not LISTEN/NOTIFY: it works on any Store (SQLite for a fleet on one machine in the tests, PostgreSQL),
 *   and a poll every fleet.pollMs (250 ms) costs one indexed read.
 * - Certificates go through the store: the node that obtains (or renews) a lineage publishes it (cert, chain, key;
 *   the key encrypted with fleet.keyFile when set) before it releases the lineage's order lock, so a node waiting
 *   on that lock finds it there and orders nothing. Every node's `autossl fleet run` writes what is newer into its
 *   own certbot layout (key 0600) and installs it into its own vhosts through the pipeline's install mode (vhost
 *   edit, nginx -t, reload, TLS check); at its start it catches up on everything.
 * - Each node reports what it serves (SNI, per lineage) into the store: `autossl fleet status` on any node.
 */
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import type { FleetStore, Store } from '../store/store.js';

export interface FleetSettings {
  node: string;
  keyFile?: string;
  liveMs: number;
  ackTimeoutMs: number;
  pollMs: number;
}

/** The config's fleet settings with their defaults; null when this node is not in a fleet. */
export function fleetOf(config: Readonly<AutoSslConfig>): FleetSettings | null {
  const f = (config as { fleet?: Partial<FleetSettings> }).fleet;
  if (!f?.node) return null;
  return { node: f.node, keyFile: f.keyFile, liveMs: f.liveMs ?? 15_000, ackTimeoutMs: f.ackTimeoutMs ?? 30_000, pollMs: f.pollMs ?? 250 };
}

/** The store's fleet records, or a clear error when the store has none. */
export function fleetStore(store: Store): FleetStore {
  if (!store.fleet)
    throw new AutoSslError(
      'CONFIG_INVALID',
      `The store ${store.kind} (${store.location}) keeps no fleet records: a fleet needs a store that does (sqlite, postgres).`,
      { hint: 'Use the built-in SQLite store (one machine) or PostgreSQL for a fleet, or remove the fleet key.' },
    );
  return store.fleet;
}
