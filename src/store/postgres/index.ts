/**
 * The PostgreSQL Store (`store: { "postgres": "<connection string>" }`, or AUTOSSL_STORE_POSTGRES): the same tables
 * as the SQLite one in a database several nodes share, and a Locker on advisory locks (src/store/postgres/locker.ts)
 * so that locks hold across the fleet. Opening connects nothing; the first call connects and migrates (open()).
 */
import type { Store } from '../store.js';
import { PgAttempts, PgCertificates } from './certificates.js';
import { Db } from './db.js';
import { PgJobs } from './jobs.js';
import { PgLocker } from './locker.js';
import { Presence } from './presence.js';
import { PgOutbox, PgUndo } from './queues.js';
import { PgBackoff } from './backoff.js';
import { PgFleet } from './fleet.js';
import { PgAriWindows, PgDnsProgress, PgRateLimits, PgRenewRuns, PgReplays, PgSites } from './records.js';

export { redact } from './db.js';
export { fleetStamp } from './presence.js';
export { advisoryKey, MIGRATIONS } from './migrations.js';

export class PgStore implements Store {
  readonly kind = 'postgres';
  /** The connection string without its password. */
  readonly location: string;
  /** A shared database is writable from every node (a role without write grants fails its writes STATE_UNAVAILABLE). */
  readonly readOnly = false;
  readonly db: Db;
  readonly jobs: PgJobs;
  readonly attempts: PgAttempts;
  readonly certificates: PgCertificates;
  readonly sites: PgSites;
  readonly outbox: PgOutbox;
  readonly undo: PgUndo;
  readonly replay: PgReplays;
  readonly rateLimits: PgRateLimits;
  readonly renewRuns: PgRenewRuns;
  readonly dnsProgress: PgDnsProgress;
  readonly ariWindows: PgAriWindows;
  readonly backoff: PgBackoff;
  /** The fleet's shared records: challenge tokens, lineages (with their keys), what each node serves. */
  readonly fleet: PgFleet;
  readonly locker: PgLocker;
  /** This process's presence in the fleet (its owner stamps are alive for the other nodes while it is held). */
  readonly presence: Presence;

  constructor(url: string) {
    this.db = new Db(url);
    this.location = this.db.location;
    this.presence = new Presence(this.db);
    this.jobs = new PgJobs(this.db, this.presence);
    this.attempts = new PgAttempts(this.db);
    this.certificates = new PgCertificates(this.db);
    this.sites = new PgSites(this.db);
    this.outbox = new PgOutbox(this.db, this.presence);
    this.undo = new PgUndo(this.db, this.presence);
    this.replay = new PgReplays(this.db);
    this.rateLimits = new PgRateLimits(this.db);
    this.renewRuns = new PgRenewRuns(this.db);
    this.dnsProgress = new PgDnsProgress(this.db);
    this.ariWindows = new PgAriWindows(this.db);
    this.backoff = new PgBackoff(this.db);
    this.fleet = new PgFleet(this.db);
    this.locker = new PgLocker(url);
  }

  /** Connects and migrates now: STATE_UNAVAILABLE (with the fix) before anything is planned or ordered. */
  open(): Promise<void> {
    return this.db.open();
  }

  async close(): Promise<void> {
    await this.presence.close();
    await this.db.close();
  }
}
