/**
 * The back-off (backoff.ts) reaches renewals autossl does not start: while any name of a lineage backs off, the
 * issuer keeps its own scheduler's renewals away from it (certbot: `autorenew = False` in the lineage's renewal
 * config, src/issuer/renewal-hold.ts), and lets them in again once the back-off is over. Brought in line after each
 * recorded outcome (a failure that starts a back-off, a success that ends one) and at the start of every
 * `autossl renew`, which certbot.service runs before its own renewal (`autossl setup`'s drop-in) so an ended
 * back-off is released before certbot reads its renewal configs.
 */
import type { EngineCore } from '../engine.js';
import type { StageEvent } from '../pipeline/context.js';
import { toAutoSslError } from '../errors.js';
import type { Store } from '../store/store.js';
import { activeBackoffs } from './backoff.js';

/** Holds or releases the lineages (all, or `only`) by the back-offs in force now; returns the lineages changed. */
/** What the sync needs of the engine (the pipeline's stages pass theirs). */
export interface HoldContext {
  config: EngineCore['config'];
  services: Pick<EngineCore['services'], 'issuer'>;
  emit(event: StageEvent): void;
}

export async function syncRenewalHolds(core: HoldContext, store: Store, options: { only?: readonly string[]; now?: number } = {}): Promise<string[]> {
  const issuer = core.services.issuer;
  if (!issuer.holdRenewals) return [];
  const now = options.now ?? Date.now();
  const backoffs = await activeBackoffs(core.config, store, now);
  const changed: string[] = [];
  for (const row of await store.certificates.list()) {
    if (options.only && !options.only.includes(row.lineage)) continue;
    const ends = row.names.map((n) => backoffs.get(n)?.until ?? 0).filter((u) => u > now);
    const until = ends.length ? Math.max(...ends) : null;
    try {
      if (!issuer.holdRenewals(row.lineage, until)) continue;
    } catch (error) {
      // the back-off itself stands (autossl places no order); only certbot's own timer may still try
      core.emit({ domain: row.names[0] ?? row.lineage, stage: 'backoff', status: 'warning', message: toAutoSslError(error).message });
      continue;
    }
    changed.push(row.lineage);
    core.emit({
      domain: row.names[0] ?? row.lineage,
      stage: 'backoff',
      status: 'info',
      message:
        until === null
          ? `${row.lineage}: the back-off is over, certbot's own renewals may renew it again`
          : `${row.lineage}: certbot's own renewals skip it until ${new Date(until).toISOString()} (its names back off)`,
    });
  }
  return changed;
}
