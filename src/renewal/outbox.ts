/**
 * The notification outbox. Notifications are queued once per event (a key per event in the state store) and
 * delivered from the commands that change things (renew, the deploy hook, certbot's post hook, the timer), marked
 * per notify tap after it returned, retried later when a tap fails: `status` only reads.
 */
import type { EngineCore } from '../engine.js';
import { toAutoSslError } from '../errors.js';
import type { Notification } from '../pipeline/context.js';
import type { Hooks } from '../pipeline/hooks.js';
import type { Store } from '../store/store.js';
import { statusRows, type StatusRow } from './status.js';

export function notification(
  core: EngineCore,
  kind: Notification['kind'],
  key: string,
  row: Pick<StatusRow, 'lineage' | 'names' | 'notAfter' | 'daysLeft'>,
  error?: Notification['error'],
): Notification {
  return {
    key,
    kind,
    lineage: row.lineage,
    names: row.names,
    notAfter: row.notAfter,
    daysLeft: row.daysLeft,
    error,
    at: new Date().toISOString(),
    host: core.host,
  };
}

export async function enqueue(store: Store, n: Notification): Promise<void> {
  await store.outbox.enqueue(n.key, n.kind, JSON.stringify(n));
}

/** Certificates that entered their renewal window, or expired, without a renewal: queued once per expiry date. */
export async function enqueueDue(core: EngineCore, store: Store, now = Date.now()): Promise<void> {
  const rows = statusRows(await store.certificates.list(), [], now, core.config.renewal.windowFraction);
  for (const row of rows) {
    if ((row.state === 'due' || row.state === 'expired') && row.lineage) {
      const kind = row.state === 'due' ? 'renewal-due' : 'expired';
      await enqueue(store, notification(core, kind, `${kind}:${row.lineage}:${row.notAfter ?? ''}`, row));
    }
  }
}

/** Which notify taps took a notification in this delivery attempt, and which failed. */
const deliveries = new WeakMap<Notification, { deliveredTo: Set<string>; delivered: string[]; failed: Array<{ plugin: string; message: string }> }>();

/**
 * Makes every notify tap take each notification at most once: a tap that already took it is skipped on a retry,
 * and a failing tap does not keep the others from theirs.
 */
export function trackNotifyDeliveries(hooks: Hooks): void {
  hooks.notify.intercept({
    register(tapInfo) {
      const original = tapInfo.fn as (n: Notification) => unknown;
      const plugin = tapInfo.name;
      if (tapInfo.type !== 'promise' && tapInfo.type !== 'sync') return tapInfo;
      tapInfo.type = 'promise';
      tapInfo.fn = async (n: Notification) => {
        const track = deliveries.get(n);
        if (track?.deliveredTo.has(plugin)) return;
        try {
          await original(n);
          track?.delivered.push(plugin);
        } catch (error) {
          if (!track) throw error;
          track.failed.push({ plugin, message: toAutoSslError(error).message });
        }
      };
      return tapInfo;
    },
  });
}

export interface DeliveryReport {
  delivered: number;
  failed: Array<{ key: string; plugin: string; message: string }>;
  /** Still queued (failed now, retried later). */
  pending: number;
}

const RETRY_MAX_MS = 6 * 3_600_000;

/** Delivers the queued notifications that are due, each to every notify tap that has not taken it yet. */
export async function deliverOutbox(core: EngineCore, now = Date.now()): Promise<DeliveryReport> {
  const report: DeliveryReport = { delivered: 0, failed: [], pending: 0 };
  const store = core.services.state();
  if (!core.hooks.notify.taps.length) return report;
  for (const row of await store.outbox.claim(now)) {
    const n = JSON.parse(row.payload) as Notification;
    const track = { deliveredTo: new Set(row.deliveredTo), delivered: [] as string[], failed: [] as Array<{ plugin: string; message: string }> };
    deliveries.set(n, track);
    try {
      await core.hooks.notify.promise(n);
    } catch (error) {
      track.failed.push({ plugin: '?', message: toAutoSslError(error).message });
    }
    for (const plugin of track.delivered) await store.outbox.markDeliveredTo(row.id, plugin);
    if (track.failed.length === 0) {
      await store.outbox.settle(row.id, { delivered: true });
      report.delivered++;
    } else {
      const retryAt = Date.now() + Math.min(core.config.notify.retryBaseMs * 2 ** row.attempts, RETRY_MAX_MS);
      await store.outbox.settle(row.id, { delivered: false, error: track.failed.map((f) => `${f.plugin}: ${f.message}`).join('; '), retryAt });
      for (const f of track.failed) report.failed.push({ key: row.key, ...f });
      report.pending++;
    }
  }
  return report;
}
