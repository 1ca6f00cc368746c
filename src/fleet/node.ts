/**
 * `autossl fleet run`: what each node of a fleet does, in a loop on the store (every fleet.pollMs):
 * - a heartbeat (the ordering node waits for the acks of live nodes only);
 * - every published challenge token written into this node's challenge directory, then acknowledged; a withdrawn
 *   one removed;
 * - every published lineage newer than this node's written into its certbot layout and installed into its own
 *   vhosts through the pipeline's install mode (vhost edit, nginx -t, reload, TLS check). At start this is the
 *   catch-up of a node that joined later or was down;
 * - what this node serves for each lineage (SNI on its own TLS listener) reported into the store;
 * - every few seconds, a batch whose node died finished here (src/fleet/handover.ts), if no other node took it.
 * Nothing here talks to another node: a node cut from the others but reaching the store changes nothing served.
 */
import fsp from 'node:fs/promises';
import net from 'node:net';
import path from 'node:path';
import { mapBounded } from '../bounded.js';
import type { EngineCore } from '../engine/types.js';
import { servedSerial } from '../installer/sni.js';
import { challengeDir, writeServed } from '../stages/webroot-dirs.js';
import type { FleetStore, FleetServedRow } from '../store/store.js';
import { validToken } from './challenge.js';
import type { FleetSettings } from './config.js';
import { localSerial, writeLineage } from './lineage.js';
import { lineageFiles } from '../issuer/issuer.js';
import { HANDOVER_EVERY_MS, type JobHandover } from './handover.js';

/** The first retry of a failed install, and the longest wait between retries. */
const INSTALL_RETRY_MS = 5000;
const INSTALL_RETRY_MAX_MS = 600_000;

export interface FleetNodeEvents {
  log(message: string): void;
}

export class FleetNode {
  /** Tokens this node wrote (removed when the store no longer has them). */
  private readonly written = new Set<string>();
  /**
   * serial → the error of its last install here, and when to try again: not in every loop (an install that fails
   * for good would reload nginx every round), but not never either: what failed at a start (the config lock of a
   * killed run, a reload racing the recovery) succeeds a little later. 5 s, doubling up to 10 minutes.
   */
  private readonly failed = new Map<string, { error: string; retryAt: number; delayMs: number }>();
  /** Serials this node was seen to serve (installed here, or found served at start). */
  private readonly verified = new Set<string>();
  private lastReport = 0;
  /** The first pass (the catch-up at start) is done. */
  private caughtUp = false;
  private stopped = false;

  /** `store`: opened on each use (an unreachable store at start is a failing round, retried, not an exit). */
  constructor(
    private readonly core: EngineCore,
    private readonly store: () => FleetStore,
    private readonly settings: FleetSettings,
    private readonly events: FleetNodeEvents,
    private readonly handover?: JobHandover,
  ) {}

  private get fleet(): FleetStore {
    return this.store();
  }

  /**
   * Runs until stop(). Two loops: heartbeat and challenge tokens (fast: an order waits on them), and lineages with
   * the served report (an install takes seconds: it must not hold back a token, or the heartbeat that says this
   * node is alive). A failing round (the store unreachable) is logged and retried; nothing served changes.
   */
  async run(): Promise<void> {
    await Promise.all([
      this.loop('challenges', async () => {
        await this.fleet.heartbeat(this.settings.node);
        await this.syncChallenges();
      }),
      this.loop('certificates', async () => {
        const installed = await this.syncLineages();
        if (installed || Date.now() - this.lastReport > 5000) await this.report();
      }),
      // a third loop: a dead node's batch runs for minutes, the tokens and the installs go on meanwhile
      this.handover && this.loop('jobs', async () => void (await this.handover!.round()), HANDOVER_EVERY_MS),
    ]);
  }

  private async loop(what: string, round: () => Promise<void>, everyMs = this.settings.pollMs): Promise<void> {
    let failing = false;
    while (!this.stopped) {
      try {
        await round();
        if (failing) this.events.log(`${what}: the store answers again`);
        failing = false;
      } catch (error) {
        if (!failing) this.events.log(`${what}: round failed (what is served stays as it is): ${(error as Error).message}`);
        failing = true;
      }
      await this.pause(everyMs);
    }
  }

  /** Waits `ms`, or less when stop() comes meanwhile. */
  private async pause(ms: number): Promise<void> {
    for (let left = ms; left > 0 && !this.stopped; left -= this.settings.pollMs) await new Promise((r) => setTimeout(r, Math.min(left, this.settings.pollMs)));
  }

  stop(): void {
    this.stopped = true;
  }

  /** One pass of both loops (tests). */
  async round(): Promise<void> {
    await this.fleet.heartbeat(this.settings.node);
    await this.syncChallenges();
    const installed = await this.syncLineages();
    if (installed || Date.now() - this.lastReport > 5000) await this.report();
  }

  async syncChallenges(): Promise<void> {
    const rows = await this.fleet.challenges();
    const dir = await challengeDir(this.core.config.challengeDir);
    const current = new Set<string>();
    for (const row of rows) {
      if (!validToken(row.token)) continue;
      current.add(row.token);
      if (this.written.has(row.token)) continue;
      try {
        await writeServed(path.join(dir, row.token), row.content);
      } catch (error) {
        // withdrawn meanwhile (on the ordering node its own hook removes the file it wrote here): not acknowledged
        if ((error as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw error;
      }
      this.written.add(row.token);
      await this.fleet.ack(row.token, this.settings.node);
    }
    for (const token of [...this.written]) {
      if (current.has(token)) continue;
      this.written.delete(token);
      await fsp.rm(path.join(dir, token), { force: true });
    }
  }

  /** Installs what is newer in the store; returns how many lineages it installed. */
  async syncLineages(): Promise<number> {
    const serials = await this.fleet.lineageSerials();
    const issuer = this.core.services.issuer;
    const todo: Array<{ id: string; serial: string; written?: boolean }> = [];
    for (const s of serials) {
      if ((this.failed.get(s.serial)?.retryAt ?? 0) > Date.now() || this.verified.has(s.serial)) continue;
      if ((await localSerial(issuer, s.id)) !== s.serial) todo.push(s);
      // the files are here, but a node killed before its install (or whose vhost was edited since) may not serve
      // them: what nginx serves decides, once per serial
      // after the catch-up at start, what this node published itself is installed by the run that obtained it
      else if (this.caughtUp && (await this.fleet.lineage(s.id))?.node === this.settings.node) this.verified.add(s.serial);
      else if ((await this.servedHere(s.id).catch(() => null)) === s.serial) this.verified.add(s.serial);
      else todo.push({ ...s, written: true });
    }
    this.caughtUp = true;
    if (!todo.length) return 0;
    let installed = 0;
    await mapBounded(todo, 8, async ({ id, serial, written }) => {
      const row = await this.fleet.lineage(id);
      if (!row || row.serial !== serial) return;
      try {
        const here = await issuer.find(id).catch(() => null);
        if (here && here.notAfter.getTime() > row.notAfter) return; // this node holds a newer one (it publishes it)
        const files = written ? lineageFiles((await issuer.find(id))!) : await writeLineage(this.core.config, issuer, this.settings, row);
        const { ctx, abort } = this.core.context(row.names[0]!, 'install', { lineage: files, plan: { names: row.names, certName: row.id, notes: [] } });
        ctx.needsReload = true; // the live links point at new files
        const result = await this.core.run(ctx, abort);
        if (!result.ok) throw result.error ?? new Error('install failed');
        installed++;
        this.verified.add(row.serial);
        this.failed.delete(row.serial);
        this.events.log(`installed ${row.id} (serial ${row.serial}, published by ${row.node})`);
      } catch (error) {
        const message = (error as Error).message;
        const delayMs = Math.min((this.failed.get(serial)?.delayMs ?? INSTALL_RETRY_MS / 2) * 2, INSTALL_RETRY_MAX_MS);
        this.failed.set(serial, { error: message, retryAt: Date.now() + delayMs, delayMs });
        this.events.log(`could not install ${id} (serial ${serial}): ${message}`);
      }
    });
    return installed;
  }

  /** What this node serves for each lineage of the store, over SNI on its own TLS listener for the first name. */
  async report(): Promise<void> {
    this.lastReport = Date.now();
    const serials = await this.fleet.lineageSerials();
    const rows: FleetServedRow[] = await mapBounded(serials, 16, async ({ id }) => {
      const row = await this.fleet.lineage(id);
      const name = row?.names.find((n) => !n.startsWith('*.')) ?? row?.names[0]?.replace(/^\*\./, 'fleet-probe.');
      if (!name) return { node: this.settings.node, lineage: id, serial: null, error: 'no names', at: Date.now() };
      try {
        const endpoint = this.endpoint(name);
        return { node: this.settings.node, lineage: id, serial: await servedSerial(endpoint.host, endpoint.port, name), error: null, at: Date.now() };
      } catch (error) {
        return { node: this.settings.node, lineage: id, serial: null, error: this.failed.get(row!.serial)?.error ?? (error as Error).message, at: Date.now() };
      }
    });
    if (rows.length) await this.fleet.reportServed(rows);
  }

  /** The serial this node serves for a lineage (its first name). */
  private async servedHere(id: string): Promise<string> {
    const row = await this.fleet.lineage(id);
    const name = row?.names.find((n) => !n.startsWith('*.'));
    if (!name) throw new Error('no name to ask for');
    const endpoint = this.endpoint(name);
    return servedSerial(endpoint.host, endpoint.port, name);
  }

  /** This node's TLS listener for a name: the first socket of the block serving it over TLS (loopback for a wildcard address). */
  private endpoint(name: string): { host: string; port: number } {
    const installer = this.core.services.installer;
    const block = installer.locate(installer.load(), [name]).https.get(name);
    const socket = block?.sockets.find((x) => x.endsWith(' ssl'))?.split(' ')[0] ?? String(this.core.config.nginx.httpsPort);
    const m = /^(?:\[([^\]]+)\]|([^:]+)):(\d+)$/.exec(socket);
    const port = Number(m ? m[3] : /^\d+$/.test(socket) ? socket : this.core.config.nginx.httpsPort);
    const host = m ? (m[1] ?? m[2]!) : '127.0.0.1';
    return { host: host === '*' || host === '0.0.0.0' ? '127.0.0.1' : host === '::' ? '::1' : net.isIP(host) ? host : '127.0.0.1', port };
  }
}
