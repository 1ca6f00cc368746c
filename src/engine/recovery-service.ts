/**
 * The recovery service: commands that change things first finish what a killed run left behind (file journals,
 * undo steps, uploads, private orders, jobs); commands that only read report it instead.
 */
import path from 'node:path';
import { siteFor } from '../config/schema.js';
import { toAutoSslError } from '../errors.js';
import type { RecoveryReport } from '../installer/installer.js';
import type { StageEvent } from '../pipeline/context.js';
import { BatchGate } from '../pipeline/batch.js';
import { removeStaleLocks } from '../lock.js';
import { renewalWindowStart } from '../renewal/status.js';
import { recoverUploads } from '../issuer/upload.js';
import { fleetOf } from '../fleet/config.js';
import type { Kernel } from './core.js';
import type { JobRow, Store } from '../store/store.js';
import type { IssueService } from './issue-service.js';
import type { IssueOptions, RecoverReport } from './types.js';

export interface RecoveryService {
  /** Recovery before a command that changes things: once per engine. */
  recoverFirst(): Promise<void>;
  recover(options?: { discard?: string }): Promise<RecoverReport>;
  pendingRecovery(): Promise<{ journals: RecoveryReport & { restorable: string[] }; undo: number }>;
  /** Read-only runs say what a killed run left behind instead of repairing it. */
  reportPending(options: IssueOptions): Promise<void>;
}

/** `issue`: the issue service, resolved late (it needs this service to report pending recovery). */
export function recoveryService(k: Kernel, issue: () => IssueService, alreadyRecovered = false): RecoveryService {
  const { config, emit, installer, undo } = k;
  let recovered = alreadyRecovered;

  async function recoverFirst(): Promise<void> {
    if (recovered) return;
    recovered = true;
    const report = await recoverEverything();
    for (const file of report.journals.restored)
      emit({ domain: '*', stage: 'recover', status: 'info', message: `restored ${file}, left half-edited by a run that was killed` });
    for (const c of report.journals.conflicts)
      emit({
        domain: '*',
        stage: 'recover',
        status: 'warning',
        message: `${c.file} was changed after an interrupted run edited it; left as it is (backup ${c.backup}; resolve it, then autossl recover --discard ${c.journal})`,
      });
    for (const d of report.journals.damaged) emit({ domain: '*', stage: 'recover', status: 'warning', message: `journal ${d.journal}: ${d.reason}` });
    for (const r of report.undo.ran)
      emit({ domain: '*', stage: 'recover', plugin: r.plugin, status: 'info', message: `undid ${r.kind} left pending by a run that was killed` });
    for (const f of report.undo.failed) emit({ domain: '*', stage: 'recover', plugin: f.plugin, status: 'warning', message: f.error.message });
  }

  async function recoverEverything(): Promise<RecoverReport> {
    const journals = await installer.recover();
    if (journals.restored.length) {
      // nginx may have loaded the half-done edit: make it load the restored files
      await installer
        .test()
        .then(() => installer.reload())
        .catch((error: unknown) =>
          emit({
            domain: '*',
            stage: 'recover',
            status: 'warning',
            message: `restored files, but nginx could not reload them: ${toAutoSslError(error).message}`,
          }),
        );
    }
    const undoReport = await undo.recover();
    await recoverKilledUploads();
    await recoverOrders();
    await recoverJobs();
    await removeStaleLocks(path.join(config.stateDir, 'locks'));
    return { journals, undo: undoReport };
  }

  /** Upload directories (keys) of killed uploads that nginx does not serve, after the journals restored the vhosts. */
  async function recoverKilledUploads(): Promise<void> {
    let referenced: Set<string>;
    try {
      referenced = k.services.installer.referencedFiles(k.services.installer.load());
    } catch {
      return; // nginx's config cannot be read now: nothing is removed that it might name
    }
    for (const dir of await recoverUploads(config, referenced))
      emit({ domain: '*', stage: 'recover', status: 'info', message: `removed ${dir}, left by an upload that was killed` });
  }

  /** The issuer's leftovers of killed runs (certbot's private orders: a finished lineage is adopted, never ordered again). */
  async function recoverOrders(): Promise<void> {
    for (const adopted of (await k.services.issuer.recover?.()) ?? []) {
      emit({ domain: '*', stage: 'recover', status: 'info', message: `adopted certificate ${adopted}, obtained by a run that was killed` });
    }
  }

  /**
   * Jobs a killed process left running: a domain whose certificate exists by now is installed (no new order: the
   * lineage is reused), the others fail with INTERRUPTED; then the job ends done or failed.
   */
  async function recoverJobs(): Promise<void> {
    // in a fleet the nodes' `fleet run` loops finish a dead run's batch (src/fleet/handover.ts): a command here must
    // neither run another node's batch before its own nor fail with INTERRUPTED the domains a live node finishes
    if (fleetOf(config)) return;
    const store = k.state();
    for (const orphan of await store.jobs.orphaned()) {
      // one process recovers a job: two starting at once would both install its certificates
      const held = await store.locker.lock(`job-${orphan.id}`, config.certbot.timeoutMs * 3 + config.nginx.lockTimeoutMs, `The recovery of job ${orphan.id}`);
      try {
        const job = await store.jobs.get(orphan.id);
        if (job?.state === 'running') await recoverJob(store, job);
      } finally {
        await held.release();
      }
    }
  }

  async function recoverJob(store: Store, job: JobRow): Promise<void> {
    await store.jobs.finish(job.id, 'interrupted');
    const open = job.domains.filter((d) => d.state !== 'done' && d.state !== 'failed');
    const installable: typeof open = [];
    for (const d of open) {
      const site = siteFor(config, d.domain);
      const lineage = await k.services.issuer.find(site.certName ?? site.domain.replace(/^\*\./, '')).catch(() => null);
      // installed as it is, never ordered again here: a lineage already due is left to a new run
      if (lineage && Date.now() < renewalWindowStart(lineage.notBefore.getTime(), lineage.notAfter.getTime(), config.renewal.windowFraction))
        installable.push(d);
    }
    for (const d of open.filter((x) => !installable.includes(x))) {
      await store.jobs.updateDomain(job.id, d.domain, {
        state: 'failed',
        code: 'INTERRUPTED',
        message: `The run (job ${job.id}) was killed while ${d.domain} was ${d.state}; nothing of it was left half-done.`,
        finished: true,
      });
    }
    if (installable.length) {
      emit({
        domain: '*',
        stage: 'recover',
        status: 'info',
        message: `job ${job.id} was interrupted: installing the certificates it obtained (${installable.map((d) => d.domain).join(', ')})`,
      });
      const batch =
        installable.length > 1 ? new BatchGate({ challenge: config.preflight.timeoutMs * 2 + 2000, vhost: config.batch.installWindowMs }) : undefined;
      await Promise.all(installable.map((d) => issue().issueOne(d.domain, { job: job.id, batch, source: 'cli' })));
    }
    const after = await store.jobs.get(job.id);
    await store.jobs.finish(job.id, after && after.domains.every((d) => d.state === 'done') ? 'done' : 'failed');
  }

  async function pendingRecoveryReport(): Promise<{ journals: RecoveryReport & { restorable: string[] }; undo: number }> {
    const journals = await installer.pendingRecovery();
    let pendingUndo = 0;
    try {
      pendingUndo = (await k.readState().undo.list({ state: 'open' })).length;
    } catch {
      pendingUndo = 0;
    }
    return { journals, undo: pendingUndo };
  }

  async function reportPending(options: IssueOptions): Promise<void> {
    const pending = await pendingRecoveryReport().catch(() => null);
    if (!pending) return;
    const j = pending.journals;
    const say = (message: string): void => {
      const event: StageEvent = { domain: '*', stage: 'recover', status: 'warning', message };
      options.onEvent?.(event);
      emit(event);
    };
    if (j.restorable.length) say(`a killed run left ${j.restorable.join(', ')} half-edited; the next autossl issue (or autossl recover) restores it`);
    for (const c of j.conflicts) say(`${c.file} was changed after an interrupted run edited it (backup ${c.backup})`);
    for (const d of j.damaged) say(`journal ${d.journal}: ${d.reason}`);
    if (pending.undo) say(`${pending.undo} undo step(s) of killed runs are pending; autossl recover runs them`);
  }

  return {
    recoverFirst,
    async recover(options = {}) {
      if (options.discard) await installer.discardJournal(options.discard);
      recovered = true;
      return recoverEverything();
    },
    pendingRecovery: pendingRecoveryReport,
    reportPending,
  };
}
