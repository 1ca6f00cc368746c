/**
 * The hooks table: every stage of getting a domain served over HTTPS, in the order one domain passes them, plus
 * the hooks around certbot's own renewals and for notifications. Built-in stages are plugins tapping these hooks
 * exactly as a user plugin does (src/stages/*). Tap with `{ name, stage }` where order matters; STAGE names the
 * slots.
 *
 * | hook        | type                      | payload                    | built-in taps                               |
 * |-------------|---------------------------|----------------------------|---------------------------------------------|
 * | plan        | AsyncSeriesWaterfallHook  | DomainPlan, ctx            | plan-names (one block, one certificate)     |
 * | preflight   | AsyncParallelHook         | ctx (adds findings)        | preflight-dns, -caa, -budget                |
 * | findings    | AsyncSeriesHook           | ctx (may resolve findings) | (plugins resolve what they can act on)      |
 * | challenge   | AsyncSeriesBailHook       | ctx -> ChallengeSetup      | challenge-webroot (http-01, last)           |
 * | beforeIssue | AsyncSeriesHook           | ctx                        | preflight-port80 (self-check)               |
 * | issue       | AsyncSeriesBailHook       | ctx -> Lineage             | issue-renewed (deploy, first), issue-certbot|
 * | vhost       | AsyncSeriesWaterfallHook  | VhostEdit, ctx             | vhost-https, vhost-hsts (nginx -t included) |
 * | validate    | AsyncSeriesHook           | ctx                        | nginx-validate (only for unvalidated edits) |
 * | reload      | AsyncSeriesHook           | ctx                        | nginx-reload (coalesced)                    |
 * | verify      | AsyncSeriesHook           | ctx                        | verify-tls                                  |
 * | finally     | AsyncSeriesHook           | ctx, Outcome               | state-record (always runs)                  |
 * | notify      | AsyncSeriesHook           | Notification               | (webhook plugin); delivered from the outbox |
 * | beforeRenew | AsyncSeriesHook           | RenewEvent                 | (certbot's pre hook, or autossl renew)      |
 * | afterRenew  | AsyncSeriesHook           | RenewEvent                 | (certbot's post hook, or autossl renew)     |
 *
 * Rollback is not a hook: taking back every file write of the domain and running its pending undo steps is the
 * pipeline's own duty on any failure, so no plugin can forget it.
 */
import { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import type { ChallengeSetup, DomainContext, DomainPlan, Notification, Outcome, RenewEvent } from './context.js';
import type { LineageFiles as Lineage } from '../issuer/issuer.js';
import type { VhostEdit } from '../installer/installer.js';

/**
 * Named slots for ordering taps within a hook (lower runs first; equal stages run in the order they were tapped,
 * built-in plugins first). Tap at `STAGE.USER` to run after the built-in tap of a hook, `STAGE.FIRST` to run
 * before it (a DNS-01 provider on `challenge`, a check that must see the plan before others).
 */
export const STAGE = {
  FIRST: -100,
  BUILTIN: 0,
  USER: 100,
  LAST: 1000,
} as const;

export function createHooks() {
  return Object.freeze({
    /** AsyncSeriesWaterfallHook<[DomainPlan, DomainContext]>: shape the plan (names, certificate, challenge). */
    plan: new AsyncSeriesWaterfallHook<[DomainPlan, DomainContext]>(['plan', 'ctx']),
    /** AsyncParallelHook<[DomainContext]>: checks that add findings; an error finding stops the domain. */
    preflight: new AsyncParallelHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: after pre-flight; a plugin that can act on a finding marks it resolved. */
    findings: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesBailHook<[DomainContext], ChallengeSetup>: the first tap that returns a setup wins. */
    challenge: new AsyncSeriesBailHook<[DomainContext], ChallengeSetup | undefined>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: last moment before the CA is asked. */
    beforeIssue: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesBailHook<[DomainContext], Lineage>: obtain the certificate; the first lineage wins. */
    issue: new AsyncSeriesBailHook<[DomainContext], Lineage | undefined>(['ctx']),
    /** AsyncSeriesWaterfallHook<[VhostEdit, DomainContext]>: the directives to ensure (or remove) in the vhost. */
    vhost: new AsyncSeriesWaterfallHook<[VhostEdit, DomainContext]>(['edit', 'ctx']),
    /** AsyncSeriesHook<[DomainContext]>: prove the edited config is right (throw to roll back). */
    validate: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: make nginx load it. */
    reload: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: prove nginx serves it (throw to roll back). */
    verify: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext, Outcome]>: always runs, after success or failure. */
    finally: new AsyncSeriesHook<[DomainContext, Outcome]>(['ctx', 'outcome']),
    /**
     * AsyncSeriesHook<[Notification]>: not per domain run. Fired from the outbox (renew, the deploy hook, the timer)
     * for a renewal that failed, a certificate renewed, one entering its renewal window or expired. Each tap gets a
     * notification until it returns without throwing, and never again after that.
     */
    notify: new AsyncSeriesHook<[Notification]>(['notification']),
    /** AsyncSeriesHook<[RenewEvent]>: before certbot validates any renewal (certbot's pre hook, or autossl renew). */
    beforeRenew: new AsyncSeriesHook<[RenewEvent]>(['renewal']),
    /** AsyncSeriesHook<[RenewEvent]>: after certbot's renewal attempts, whatever their outcome. */
    afterRenew: new AsyncSeriesHook<[RenewEvent]>(['renewal']),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
export type HookName = keyof Hooks;

/** The hooks one domain passes, in order (`finally` always last). The pipeline walks this list. */
export const HOOK_ORDER = ['plan', 'preflight', 'findings', 'challenge', 'beforeIssue', 'issue', 'vhost', 'validate', 'reload', 'verify', 'finally'] as const;
export type StageName = (typeof HOOK_ORDER)[number];
