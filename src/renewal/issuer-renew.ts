/**
 * `autossl renew` with an issuer other than certbot: autossl itself goes over the issuer's lineages, renews those
 * due (or revoked, or all with --force) through `Issuer.renew`, and deploys each renewed lineage through the
 * pipeline as certbot's deploy hook would (vhost, nginx -t, reload, TLS check, plugins), with the same
 * beforeRenew/afterRenew hooks, records and notifications.
 */
import crypto from 'node:crypto';
import type { EngineCore } from '../engine/types.js';
import { AutoSslError, toAutoSslError } from '../errors.js';
import { lineageFiles, type Lineage } from '../issuer/issuer.js';
import { ownerStamp } from '../lock.js';
import type { RenewEvent } from '../pipeline/context.js';
import { deliverOutbox, enqueue, enqueueDue, notification } from './outbox.js';
import { deployLineage } from './deploy-hook.js';
import { recordRenewals, runRenewHook, type RenewOutcome, type RenewReport } from './renew.js';
import { renewalWindowStart } from './status.js';

export async function renewThroughIssuer(core: EngineCore, options: { certName?: string; force?: boolean }): Promise<RenewReport> {
  const { config } = core;
  const { issuer } = core.services;
  const store = core.services.state();
  const all = await issuer.list();
  if (options.certName !== undefined && !all.some((l) => l.id === options.certName)) {
    throw new AutoSslError('CONFIG_INVALID', `The issuer ${issuer.name} has no certificate named ${JSON.stringify(options.certName)}.`, {
      hint: 'autossl status lists the certificate names.',
    });
  }
  const chosen = all.filter((l) => options.certName === undefined || l.id === options.certName);
  const now = Date.now();
  const due = new Map<string, boolean>();
  for (const l of chosen) {
    const byDate = now >= renewalWindowStart(l.notBefore.getTime(), l.notAfter.getTime(), config.renewal.windowFraction);
    due.set(l.id, options.force === true || byDate || (await issuer.revoked?.(l).catch(() => false)) === true);
  }
  const base = { runId: crypto.randomUUID(), forced: options.force === true, certName: options.certName, startedBy: 'autossl' as const, owner: ownerStamp() };
  const event = (phase: RenewEvent['phase']): RenewEvent => ({
    ...base,
    phase,
    lineages: chosen.map((l) => ({ name: l.id, names: l.names, due: due.get(l.id)! })),
  });
  const hookErrors: string[] = [];
  await runRenewHook(core, event('before'), hookErrors);
  const outcomes: RenewOutcome[] = [];
  const renewed: Lineage[] = [];
  try {
    for (const l of chosen) {
      if (!due.get(l.id)) {
        outcomes.push({ lineage: l.id, names: l.names, outcome: 'not-due', problems: [] });
        continue;
      }
      try {
        const log = (message: string): void => core.emit({ domain: l.names[0] ?? l.id, stage: 'renew', plugin: issuer.name, status: 'info', message });
        renewed.push(await issuer.renew(l, { force: options.force === true, log }, AbortSignal.timeout(config.certbot.timeoutMs * 3)));
      } catch (error) {
        const e = toAutoSslError(error);
        outcomes.push({ lineage: l.id, names: l.names, outcome: 'failed', problems: [], message: `${issuer.name}: ${e.message}` });
      }
    }
  } finally {
    await runRenewHook(core, event('after'), hookErrors);
    await core.services.undo.finishRun(base.runId, true);
  }
  // each renewed certificate into nginx, as certbot's deploy hook does for certbot's renewals
  for (const l of renewed) {
    const result = await deployLineage(core, lineageFiles(l), l.names, l.names, l.serial);
    outcomes.push({ lineage: l.id, names: l.names, outcome: result.ok ? 'renewed' : 'failed', problems: [], message: result.error?.message });
    const kind = result.ok ? 'renewed' : 'deploy-failed';
    const row = { lineage: l.id, names: l.names, notAfter: l.notAfter.toISOString(), daysLeft: Math.floor((l.notAfter.getTime() - Date.now()) / 86_400_000) };
    await enqueue(
      store,
      notification(core, kind, `${kind}:${l.id}:${l.serial}`, row, result.error ? { code: result.error.code, message: result.error.message } : undefined),
    );
  }
  outcomes.sort((a, b) => a.lineage.localeCompare(b.lineage));
  await recordRenewals(core, store, outcomes);
  await enqueueDue(core, store);
  const notifications = await deliverOutbox(core);
  return { results: outcomes, notifications, hookErrors };
}
