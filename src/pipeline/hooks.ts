/**
 * The hooks table: every stage of issuing a certificate for one domain, in order. Built-in stages are plugins
 * tapping these hooks exactly as a user plugin would (src/stages/*). Tap with `{ name, stage }` where order
 * matters; STAGE constants name the slots.
 *
 * | hook        | type                          | payload                    | built-in taps                       |
 * |-------------|-------------------------------|----------------------------|-------------------------------------|
 * | plan        | AsyncSeriesWaterfallHook      | DomainPlan, ctx            | config defaults                     |
 * | preflight   | AsyncParallelHook             | ctx (adds findings)        | preflight-dns, -caa, -budget        |
 * | findings    | AsyncSeriesHook               | ctx (may resolve findings) | (cloudflare plugin resolves its own)|
 * | challenge   | AsyncSeriesBailHook           | ctx -> ChallengeSetup      | challenge-webroot                   |
 * | beforeIssue | AsyncSeriesHook               | ctx                        | preflight-port80 (self-check)       |
 * | issue       | AsyncSeriesBailHook           | ctx -> Lineage             | issue-certbot                       |
 * | vhost       | AsyncSeriesWaterfallHook      | VhostEdit, ctx             | vhost-https, vhost-hsts             |
 * | validate    | AsyncSeriesHook               | ctx                        | nginx-validate                      |
 * | reload      | AsyncSeriesHook               | ctx                        | nginx-reload (coalesced)            |
 * | verify      | AsyncSeriesHook               | ctx                        | verify-tls                          |
 * | finally     | AsyncSeriesHook               | ctx, Outcome               | state-record (always runs)          |
 * | notify      | AsyncSeriesHook               | Notification               | (webhook plugin) renewal failed/due |
 *
 * Rollback is not a hook: restoring every file the domain's transaction touched is the pipeline's own duty
 * on any failure, so no plugin can forget it.
 */
import { AsyncParallelHook, AsyncSeriesBailHook, AsyncSeriesHook, AsyncSeriesWaterfallHook } from 'tapable';
import type { DomainContext, DomainPlan, ChallengeSetup, Notification, Outcome } from './context.js';
import type { Lineage } from '../certbot/lineage.js';
import type { VhostEdit } from '../nginx/edit.js';

/** Named slots for ordering taps within a hook (lower runs first). */
export const STAGE = {
  FIRST: -100,
  BUILTIN: 0,
  USER: 100,
  LAST: 1000,
} as const;

export function createHooks() {
  return Object.freeze({
    /** AsyncSeriesWaterfallHook<[DomainPlan, DomainContext]>: shape the plan (names, webroot, vhost). */
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
    /** AsyncSeriesWaterfallHook<[VhostEdit, DomainContext]>: the directives to ensure in the vhost. */
    vhost: new AsyncSeriesWaterfallHook<[VhostEdit, DomainContext]>(['edit', 'ctx']),
    /** AsyncSeriesHook<[DomainContext]>: prove the edited config is valid (throw to roll back). */
    validate: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: make nginx load it. */
    reload: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext]>: prove nginx serves it (throw to roll back). */
    verify: new AsyncSeriesHook<[DomainContext]>(['ctx']),
    /** AsyncSeriesHook<[DomainContext, Outcome]>: always runs, after success or failure. */
    finally: new AsyncSeriesHook<[DomainContext, Outcome]>(['ctx', 'outcome']),
    /** AsyncSeriesHook<[Notification]>: not per domain run; fired when a renewal fails or a certificate enters
     * its renewal window without a successful renewal (once per certificate and expiry date). */
    notify: new AsyncSeriesHook<[Notification]>(['notification']),
  });
}

export type Hooks = ReturnType<typeof createHooks>;
export type HookName = keyof Hooks;
/** The order one domain passes the hooks (finally always last). */
export const HOOK_ORDER: readonly HookName[] = ['plan', 'preflight', 'findings', 'challenge', 'beforeIssue', 'issue', 'vhost', 'validate', 'reload', 'verify', 'finally'];
