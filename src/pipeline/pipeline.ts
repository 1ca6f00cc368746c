/**
 * Runs one DomainContext through the hooks, in HOOK_ORDER, skipping the stages its mode does not include. On any
 * failure every file write of the domain is taken back (its own edits only, even when other domains edited the
 * same files since), nginx reloads the restored config if it had loaded the edits, and the run's pending undo
 * steps run; `finally` always runs. Every run has a hard deadline: a tap that never settles ends the domain with
 * TIMEOUT naming the stage and the plugin, so a run can never end with a domain unaccounted for.
 */
import { AutoSslError, ERROR_CODES, toAutoSslError, type ErrorCode } from '../errors.js';
import { readCertificate } from '../issuer/certificate.js';
import type { FileEdit } from '../installer/installer.js';
import { customCertificatesDir } from '../issuer/upload.js';
import type { DomainContext, Outcome, RunMode, StageEvent } from './context.js';
import { HOOK_ORDER, type StageName } from './hooks.js';
import { applyEdits } from './apply.js';
import type { HeldLock } from '../lock.js';
import path from 'node:path';
import { configAsItStands } from './as-it-stands.js';
import { runningTap } from './instrument.js';

export interface DomainResult {
  domain: string;
  /** The job (batch) the run belonged to, when it was a real run. */
  jobId?: string;
  mode: RunMode;
  names: string[];
  ok: boolean;
  error?: AutoSslError;
  lineage?: DomainContext['lineage'];
  certificate?: DomainContext['certificate'];
  reused: boolean;
  /** Each edit as made (or, in a dry run, planned), in order. */
  edits: Array<{ file: string; changes: string[]; before: string; after: string }>;
  /** Per file: the bytes before the run and after it (what a dry run's diff shows). */
  files: Array<{ file: string; before: string; after: string }>;
  rolledBack: string[];
  notes: string[];
  events: StageEvent[];
  ms: number;
}

/** The stages each mode passes (`finally` always runs). */
const MODE_STAGES: Record<RunMode, ReadonlySet<StageName>> = {
  issue: new Set(HOOK_ORDER),
  'dry-run': new Set(HOOK_ORDER),
  preview: new Set<StageName>(['plan', 'challenge', 'issue', 'vhost', 'validate', 'reload', 'verify', 'finally']),
  deploy: new Set<StageName>(['plan', 'issue', 'vhost', 'validate', 'reload', 'verify', 'finally']),
  install: new Set<StageName>(['plan', 'issue', 'vhost', 'validate', 'reload', 'verify', 'finally']),
  'dns-hook': new Set<StageName>(['plan', 'challenge']),
};

async function stage<T>(ctx: DomainContext, name: string, run: () => Promise<T>): Promise<T> {
  const started = performance.now();
  ctx.emit({ stage: name, status: 'start' });
  try {
    const result = await run();
    ctx.emit({ stage: name, status: 'done', ms: performance.now() - started });
    return result;
  } catch (error) {
    ctx.emit({ stage: name, status: 'error', ms: performance.now() - started, message: (error as Error).message });
    throw error;
  }
}

export interface RunOptions {
  /** Past this the user is told which stage is stuck. */
  slowAfterMs: number;
  /** Past this the domain fails with TIMEOUT (and is rolled back). */
  deadlineMs: number;
  /** Aborted by the engine's deadline; the context's own signal. */
  abort: AbortController;
  /** Names of the built-in taps (a TIMEOUT hint blames a plugin only when it is not one of them). */
  builtinTaps: ReadonlySet<string>;
  /** Takes the locks of the server blocks the run edits (held from planning to the end, before the deadline starts). */
  lockBlocks?: (ctx: DomainContext) => Promise<HeldLock | null>;
}

export async function runDomain(ctx: DomainContext, options: RunOptions): Promise<DomainResult> {
  const hooks = ctx.services.hooks;
  const started = performance.now();
  // another run editing the same block finishes first: this one then plans on what it left
  let held: HeldLock | null = null;
  let lockError: AutoSslError | undefined;
  try {
    // counted in the batch while it takes its locks (the batch's gates wait for it), but not while it waits for
    // another run on the same block, which may be one of the batch waiting at a gate for it
    if (options.lockBlocks) {
      ctx.batch?.enter(ctx, 'plan');
      const locking = options.lockBlocks(ctx);
      let contended: NodeJS.Timeout | undefined;
      const waited = new Promise<void>((resolve) => (contended = setTimeout(resolve, 250)));
      if (
        (await Promise.race([
          locking.then(
            () => 'held',
            () => 'held',
          ),
          waited.then(() => 'waiting'),
        ])) === 'waiting'
      )
        ctx.batch?.leave(ctx);
      clearTimeout(contended);
      held = await locking;
    }
  } catch (error) {
    lockError = toAutoSslError(error);
  }
  const stages = MODE_STAGES[ctx.mode];
  let current: string = 'plan';
  // Past the expected time the user is told which stage is stuck; past the deadline the domain fails.
  const slow = setTimeout(() => {
    ctx.emit({
      stage: current,
      status: 'info',
      message: `still in "${current}" after ${Math.round(options.slowAfterMs / 1000)} s: this normally takes a few seconds`,
    });
  }, options.slowAfterMs);
  slow.unref();
  let deadlineTimer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    deadlineTimer = setTimeout(() => {
      const tap = runningTap.get(ctx);
      const error = new AutoSslError(
        'TIMEOUT',
        `${ctx.domain}: stage "${current}" did not finish within ${Math.round(options.deadlineMs / 1000)} s${tap ? ` (plugin "${tap.plugin}" in hook "${tap.hook}" was still running)` : ''}.`,
        {
          hint: tap && !options.builtinTaps.has(tap.plugin) ? `The plugin "${tap.plugin}" never finished: check it, or remove it from the config.` : undefined,
          details: { stage: current, plugin: tap?.plugin, hook: tap?.hook },
        },
      );
      options.abort.abort(error);
      reject(error);
    }, options.deadlineMs);
    deadlineTimer.unref();
  });
  deadline.catch(() => undefined);
  const at = <T>(name: StageName, run: () => Promise<T>): Promise<T> => {
    current = name;
    ctx.batch?.enter(ctx, name);
    return Promise.race([stage(ctx, name, run), deadline]);
  };
  const outcome: Outcome = { ok: false, rolledBack: [] };
  try {
    if (lockError) throw lockError;
    for (const name of HOOK_ORDER) {
      if (name === 'finally' || !stages.has(name)) continue;
      // Each stage starts in a turn of the event loop of its own: the domains of a batch start together, and their
      // synchronous work (tree lookups, planning) chained through promises would otherwise run as one task of
      // seconds for hundreds of domains, with no timer, socket or request served meanwhile.
      await new Promise((r) => setImmediate(r));
      await at(name, () => runStage(ctx, name));
    }
    outcome.ok = true;
  } catch (error) {
    outcome.error = toAutoSslError(error);
  }
  clearTimeout(slow);
  clearTimeout(deadlineTimer);
  ctx.batch?.leave(ctx);
  try {
    if (outcome.ok) await ctx.transaction.commit();
    else outcome.rolledBack = await rollback(ctx);
  } catch (error) {
    const e = toAutoSslError(error);
    ctx.emit({ stage: 'rollback', status: 'error', message: e.message });
    if (!outcome.ok && e.code === 'JOURNAL_CONFLICT') outcome.error = await unmergedRollback(ctx, outcome.error, e);
    if (outcome.ok) {
      outcome.ok = false;
      outcome.error = e;
    }
  }
  // certbot's DNS hook only asks which solver a site uses: not a run of the domain, nothing to finish
  if (ctx.mode === 'dns-hook') {
    await held?.release();
    return resultOf(ctx, outcome, performance.now() - started);
  }
  if (!ctx.dryRun) {
    try {
      const undo = await ctx.services.undo.finishRun(ctx.runId, outcome.ok);
      for (const f of undo.failed) ctx.emit({ stage: 'undo', plugin: f.plugin, status: 'error', message: f.error.message });
      for (const r of undo.ran) ctx.emit({ stage: 'undo', plugin: r.plugin, status: 'info', message: `undid ${r.kind}` });
    } catch (error) {
      ctx.emit({ stage: 'undo', status: 'error', message: toAutoSslError(error).message });
    }
  }
  try {
    await stage(ctx, 'finally', () => Promise.race([hooks.finally.promise(ctx, outcome), deadlineAfter(options.deadlineMs, ctx)]));
  } catch (error) {
    // a failing `finally` tap is reported but cannot undo a certificate that is already served
    outcome.error ??= toAutoSslError(error);
    outcome.ok = false;
  }
  await held?.release();
  return resultOf(ctx, outcome, performance.now() - started);
}

/** `finally` gets a deadline of its own: a hung tap there must not hang the run either. */
function deadlineAfter(ms: number, ctx: DomainContext): Promise<never> {
  return new Promise((_, reject) => {
    const t = setTimeout(() => {
      const tap = runningTap.get(ctx);
      reject(
        new AutoSslError(
          'TIMEOUT',
          `${ctx.domain}: stage "finally" did not finish within ${Math.round(ms / 1000)} s${tap ? ` (plugin "${tap.plugin}" was still running)` : ''}.`,
          { details: { stage: 'finally', plugin: tap?.plugin } },
        ),
      );
    }, ms);
    t.unref();
  });
}

async function runStage(ctx: DomainContext, name: StageName): Promise<void> {
  const hooks = ctx.services.hooks;
  switch (name) {
    case 'plan':
      ctx.plan = await hooks.plan.promise(ctx.plan, ctx);
      // a preview validates nothing it plans: a config nginx already rejects is said broken here, not shown as fine
      if (ctx.mode === 'dry-run' || ctx.mode === 'preview') await configAsItStands(ctx.services.installer);
      return;
    case 'preflight':
      await ctx.services.preflightSlots.run(() => hooks.preflight.promise(ctx));
      return;
    case 'findings':
      await hooks.findings.promise(ctx);
      stopOnFindings(ctx);
      return;
    case 'challenge':
      ctx.challenge = await hooks.challenge.promise(ctx);
      if (!ctx.challenge) {
        if (ctx.plan.challenge === 'dns-01')
          throw new AutoSslError('DNS_PROVIDER_MISSING', `${ctx.domain} uses the DNS-01 challenge, but no plugin in the config provides DNS records for it.`);
        throw new AutoSslError('INTERNAL', `No plugin set up the ${ctx.plan.challenge} challenge for ${ctx.domain}.`);
      }
      return;
    case 'beforeIssue':
      await hooks.beforeIssue.promise(ctx);
      stopOnFindings(ctx);
      return;
    case 'issue': {
      const lineage = await hooks.issue.promise(ctx);
      if (!lineage) throw new AutoSslError('INTERNAL', 'No plugin obtained a certificate.');
      ctx.lineage = lineage;
      if (!ctx.dryRun) ctx.certificate = readCertificate(lineage.cert);
      return;
    }
    case 'vhost': {
      const { installer } = ctx.services;
      const edit = await hooks.vhost.promise(installer.tlsEdit(ctx), ctx);
      const serverVersion = await installer.version();
      let tlsEndpoints: DomainContext['tlsEndpoints'] = [];
      let notes: string[] = [];
      await applyEdits(ctx, (config) => {
        const plan = installer.planTls(config, edit, {
          serverVersion,
          httpsPort: ctx.services.config.nginx.httpsPort,
          keepCertificatesUnder: [customCertificatesDir(ctx.services.config)],
        });
        tlsEndpoints = plan.tlsEndpoints;
        notes = plan.notes;
        return plan.edits;
      });
      ctx.tlsEndpoints = tlsEndpoints;
      for (const note of notes) {
        if (ctx.plan.notes.includes(note)) continue;
        ctx.plan.notes.push(note);
        ctx.emit({ stage: 'vhost', status: 'info', message: note });
      }
      return;
    }
    case 'validate':
      await hooks.validate.promise(ctx);
      return;
    case 'reload':
      await hooks.reload.promise(ctx);
      return;
    case 'verify':
      await hooks.verify.promise(ctx);
      return;
    case 'finally':
      return;
  }
}

/** Any unresolved error finding stops the domain before the CA is asked, with the first finding's code. */
function stopOnFindings(ctx: DomainContext): void {
  const blocking = ctx.findings.filter((f) => f.severity === 'error' && !f.resolved);
  if (!blocking.length) return;
  const first = blocking[0]!;
  const code: ErrorCode = first.code && first.code in ERROR_CODES ? (first.code as ErrorCode) : 'INTERNAL';
  throw new AutoSslError(code, blocking.map((f) => f.message).join(' '), { hint: first.hint, details: { findings: blocking } });
}

/** Takes back every file write of this domain; if nginx had loaded them, validates and reloads the restored config. */
async function rollback(ctx: DomainContext): Promise<string[]> {
  if (ctx.dryRun) return [];
  const reverted = ctx.transaction.files.length ? await ctx.services.installer.revert(ctx) : [];
  if (reverted.length && ctx.reloadedWithChanges) {
    try {
      // under the config lock: another run's edit, written but not yet validated, is not this rollback's to judge
      await ctx.services.installer.test({ underConfigLock: true });
      await ctx.services.installer.reload();
    } catch (error) {
      ctx.emit({ stage: 'rollback', status: 'error', message: `restored the files but nginx could not reload them: ${(error as Error).message}` });
    }
  }
  if (reverted.length) ctx.emit({ stage: 'rollback', status: 'info', message: `restored ${reverted.join(', ')}` });
  // also the files whose edit the editor took back itself (nginx -t refused it)
  return [...ctx.transaction.restored];
}

/**
 * A rollback whose edit could not be merged out of a file another run changed since: said in the domain's own
 * error (which file, where its bytes before are), and the journal closed with those bytes kept apart, so later
 * commands do not warn that a killed run left work behind.
 */
async function unmergedRollback(ctx: DomainContext, original: AutoSslError | undefined, conflict: AutoSslError): Promise<AutoSslError> {
  let kept: Array<{ file: string; backup: string }> = [];
  try {
    kept = await ctx.transaction.abandon(path.join(ctx.services.config.stateDir, 'rollback-conflicts'));
  } catch {
    // the journal stays: `autossl recover` reports it
  }
  const where = kept.map((k) => `${k.file} (its bytes before this run: ${k.backup})`).join(', ');
  const base = original ?? conflict;
  return new AutoSslError(
    base.code,
    `${base.message} The rollback could not take this run's edit back out of ${where || (conflict.details.file as string | undefined) || 'a file'}: ${conflict.message} That file keeps the edit.`,
    {
      hint: `Compare ${kept.map((k) => k.file).join(', ') || 'the file'} with the kept copy and fix it by hand if needed; ${base.hint}`,
      details: { ...base.details, rollback: { code: conflict.code, message: conflict.message, kept } },
      cause: base,
    },
  );
}

function resultOf(ctx: DomainContext, outcome: Outcome, ms: number): DomainResult {
  const files = new Map<string, { file: string; before: string; after: string }>();
  for (const e of ctx.edits) {
    const entry = files.get(e.file);
    if (entry) entry.after = e.after;
    else files.set(e.file, { file: e.file, before: e.before, after: e.after });
  }
  return {
    domain: ctx.domain,
    mode: ctx.mode,
    names: ctx.plan.names,
    ok: outcome.ok,
    error: outcome.error,
    lineage: ctx.lineage,
    certificate: ctx.certificate,
    reused: ctx.reusedLineage === true,
    edits: ctx.edits.map((e: FileEdit) => ({ file: e.file, changes: e.changes, before: e.before, after: e.after })),
    files: [...files.values()].filter((f) => f.before !== f.after),
    rolledBack: outcome.rolledBack,
    notes: ctx.plan.notes,
    events: ctx.events,
    ms,
  };
}
