/**
 * certbot's pre/post hooks (installed by `autossl install-hooks`): the beforeRenew/afterRenew hooks around a renewal
 * certbot started itself (its timer, cron, by hand), and the failures of that run recorded and notified.
 */
import type { EngineCore } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { scanLineages } from './scan.js';
import { deliverOutbox, enqueueDue } from './outbox.js';
import { recordRenewals, renewEvent, runRenewHook } from './renew.js';
import { certbotRun } from './hook-process.js';
import { recordSuccess } from './backoff.js';
import type { UnrenewedLineage } from '../issuer/issuer.js';

export async function renewHook(core: EngineCore, phase: 'pre' | 'post', env: NodeJS.ProcessEnv): Promise<void> {
  // autossl renew started this certbot and runs beforeRenew/afterRenew itself; an autossl issue is no renewal
  if (env.AUTOSSL_RENEW_PARENT || core.services.issuer.insideOwnOrder?.(env)) return;
  await core.recoverFirst();
  const store = core.services.state();
  const run = certbotRun();
  const base = { runId: run.runId, forced: run.forced, certName: run.certName, startedBy: 'certbot' as const, owner: run.owner };
  const errors: string[] = [];
  if (phase === 'pre') {
    const certs = await scanLineages(core.config.certbot.configDir, store);
    const event = await renewEvent(core, store, 'before', base, certs);
    // the post hook (another process) compares serials with these to tell which renewals failed; every lineage,
    // not only those due by autossl's window: certbot 5 also renews what its CA's ARI asks for (a revoked one)
    await store.renewRuns.put(
      run.runId,
      event.lineages.map((l) => ({ name: l.name, due: l.due, serial: certs.find((c) => c.lineage === l.name)?.serial ?? null })),
    );
    await runRenewHook(core, event, errors);
  } else {
    await runRenewHook(core, await renewEvent(core, store, 'after', base), errors);
    await core.services.undo.finishRun(run.runId, true);
    const attempted = await store.renewRuns.take(run.runId);
    const now = await scanLineages(core.config.certbot.configDir, store);
    const renewed: string[][] = [];
    const unrenewed: UnrenewedLineage[] = [];
    for (const a of attempted) {
      const cert = now.find((c) => c.lineage === a.name);
      if (!cert) continue;
      if (cert.serial !== a.serial) renewed.push(cert.names);
      else unrenewed.push({ lineage: a.name, names: cert.names, due: a.due });
    }
    // what the issuer's record of this run (certbot's log) says it tried and failed, whatever made it try
    const failed = core.services.issuer.lastRunFailures?.(unrenewed, attempted.length) ?? [];
    // a renewed lineage is recorded by its deploy hook; only failures are new here
    await recordRenewals(core, store, failed);
    // ...and a renewal certbot made is a validated name: its failure count starts again (backoff.ts)
    for (const names of renewed) await recordSuccess(core.config, store, names);
    await enqueueDue(core, store);
    await deliverOutbox(core);
  }
  if (errors.length) throw new AutoSslError('PLUGIN_ERROR', errors.join('; '));
}
