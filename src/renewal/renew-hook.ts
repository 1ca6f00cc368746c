/**
 * certbot's pre/post hooks (installed by `autossl install-hooks`): the beforeRenew/afterRenew hooks around a renewal
 * certbot started itself (its timer, cron, by hand), and the failures of that run recorded and notified.
 */
import { lastLoggedRun, lineageProblems, lineageSections, summarizeProblems } from '../certbot/certbot.js';
import { insideAutosslCertonly } from '../certbot/hooks.js';
import type { EngineCore } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { scanLineages } from './scan.js';
import { deliverOutbox, enqueueDue } from './outbox.js';
import { recordRenewals, renewEvent, runRenewHook, type RenewOutcome } from './renew.js';
import { certbotRun } from './hook-process.js';
import { recordSuccess } from './backoff.js';

export async function renewHook(core: EngineCore, phase: 'pre' | 'post', env: NodeJS.ProcessEnv): Promise<void> {
  // autossl renew started this certbot and runs beforeRenew/afterRenew itself; an autossl issue is no renewal
  if (env.AUTOSSL_RENEW_PARENT || insideAutosslCertonly(env)) return;
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
    // what certbot's log of this run says it tried and failed, whatever made it try
    const sections = lineageSections(lastLoggedRun(core.config.certbot.logsDir));
    const outcomes: RenewOutcome[] = [];
    for (const a of attempted) {
      const cert = now.find((c) => c.lineage === a.name);
      if (!cert) continue;
      const renewed = cert.serial !== a.serial;
      const failedHere = /Failed to renew certificate /.test(sections.get(a.name) ?? '');
      if (!renewed && !failedHere && (sections.size > 0 || a.due === false)) continue; // not tried (not due)
      // certbot's log of this run, the part about this lineage (its output is not ours to read)
      const own = renewed
        ? []
        : lineageProblems({ stdout: '', stderr: '' }, core.config.certbot.logsDir, { name: cert.lineage, names: cert.names }, attempted.length === 1);
      outcomes.push({
        lineage: a.name,
        names: cert.names,
        outcome: renewed ? 'renewed' : 'failed',
        problems: renewed ? [] : own,
        message: renewed ? undefined : summarizeProblems(own) || "certbot did not renew it (see certbot's log)",
      });
    }
    // a renewed lineage is recorded by its deploy hook; only failures are new here
    await recordRenewals(
      core,
      store,
      outcomes.filter((o) => o.outcome === 'failed'),
    );
    // ...and a renewal certbot made is a validated name: its failure count starts again (backoff.ts)
    for (const o of outcomes) if (o.outcome === 'renewed') await recordSuccess(core.config, store, o.names);
    await enqueueDue(core, store);
    await deliverOutbox(core);
  }
  if (errors.length) throw new AutoSslError('PLUGIN_ERROR', errors.join('; '));
}
