/**
 * The panel's wildcard flow: `/ssl/wildcard/start {domain}` orders `*.domain` + `domain` over DNS-01 and installs
 * it on the domain's block and on every subdomain block it covers (except those serving an upload); the panel
 * then polls `/ssl/wildcard/progress?domain=` every 3 s until `done` or `error`.
 *
 * Steps are the panel's (its view walks them in this order): starting, dns_challenge, dns_propagation,
 * le_verify, installing, done, or error. certbot runs the DNS hooks in processes of their own, which report
 * their phase through the state store (engine.dnsProgress). The panel stores `step` in a 30-character column and
 * `message`/`error` in 255-character ones (MariaDB, strict mode: a longer value fails its update and the browser
 * polls forever), so every answer is cut to fit.
 */
import crypto from 'node:crypto';
import type { AutoSsl } from '../engine.js';
import type { StageEvent } from '../pipeline/context.js';
import type { AgentEvent } from './intake.js';

export type WildcardStep = 'starting' | 'dns_challenge' | 'dns_propagation' | 'le_verify' | 'installing' | 'done' | 'error';

export interface WildcardProgress {
  step: WildcardStep;
  message: string;
  error?: string;
  job_id?: string;
}

interface Tracked extends WildcardProgress {
  running: boolean;
  /** The furthest step shown: the panel's view walks forward only (certbot validates the apex, then the wildcard). */
  shown: number;
  started: number;
  done?: Promise<void>;
}

/** Cut to the panel's column size. */
export function fit(text: string, max = 255): string {
  const flat = text.replace(/\s+/g, ' ').trim();
  return flat.length <= max ? flat : `${flat.slice(0, max - 1)}…`;
}

const STEPS: readonly WildcardStep[] = ['starting', 'dns_challenge', 'dns_propagation', 'le_verify', 'installing', 'done'];

const STAGE_STEP: Partial<Record<string, WildcardStep>> = {
  plan: 'starting',
  preflight: 'starting',
  challenge: 'dns_challenge',
  beforeIssue: 'dns_challenge',
  issue: 'dns_challenge',
  vhost: 'installing',
  validate: 'installing',
  reload: 'installing',
  verify: 'installing',
};

export class WildcardJobs {
  private readonly jobs = new Map<string, Tracked>();

  constructor(
    private readonly engine: AutoSsl,
    private readonly publish: (event: AgentEvent) => void,
  ) {}

  /** Starts (or joins the running) wildcard issuance of `domain`; returns its job id. */
  start(domain: string): string {
    const known = this.jobs.get(domain);
    if (known?.running && known.job_id) return known.job_id;
    const jobId = crypto.randomUUID();
    const tracked: Tracked = {
      step: 'starting',
      message: 'Preparing wildcard certificate issuance',
      job_id: jobId,
      running: true,
      started: Date.now(),
      shown: 0,
    };
    this.jobs.set(domain, tracked);
    const at = (): string => new Date().toISOString();
    this.publish({ type: 'job', job_id: jobId, at: at(), state: 'running', domains: [domain], wildcard: true });
    tracked.done = this.engine
      .issue([domain], {
        jobId,
        source: 'agent',
        onEvent: (e: StageEvent) => {
          if (e.plugin || e.status !== 'start') return;
          const step = STAGE_STEP[e.stage];
          if (step && step !== tracked.step) {
            tracked.step = step;
            tracked.message =
              step === 'installing'
                ? 'Installing the certificate on the domain and its subdomains'
                : step === 'dns_challenge'
                  ? 'Creating DNS TXT challenge record'
                  : tracked.message;
          }
          this.publish({ type: 'stage', job_id: jobId, at: at(), domain, stage: e.stage, status: e.status, step: tracked.step });
        },
      })
      .then(
        ([result]) => {
          tracked.running = false;
          if (result?.ok) {
            const blocks = new Set(result.edits.map((e) => e.file)).size;
            tracked.step = 'done';
            tracked.message = `Certificate for ${result.names.join(', ')} installed${blocks ? ` (${blocks} file${blocks > 1 ? 's' : ''} changed)` : ''}`;
          } else {
            tracked.step = 'error';
            tracked.error = `${result?.error?.code ?? 'INTERNAL'}: ${result?.error?.message ?? 'the issuance failed'}`;
            tracked.message = tracked.error;
          }
          this.publish({ type: 'job', job_id: jobId, at: at(), state: result?.ok ? 'done' : 'failed', code: result?.error?.code ?? null });
        },
        (error: unknown) => {
          tracked.running = false;
          tracked.step = 'error';
          tracked.error = `INTERNAL: ${(error as Error).message}`;
          tracked.message = tracked.error;
        },
      );
    return jobId;
  }

  /** What the panel's poll shows; null when this agent knows no wildcard issuance of `domain`. */
  async progress(domain: string): Promise<WildcardProgress | null> {
    const t = this.jobs.get(domain);
    if (!t) return null;
    let { step, message } = t;
    if (t.running && (step === 'dns_challenge' || step === 'dns_propagation' || step === 'le_verify')) {
      // certbot is running: its DNS hooks (other processes) say how far the TXT record got
      const dns = await this.engine.dnsProgress(domain);
      if (dns && dns.at >= t.started) {
        step = dns.phase;
        message =
          dns.phase === 'dns_propagation' && !/not visible/.test(dns.message) ? `${dns.message} (${Math.round((Date.now() - dns.at) / 1000)} s)` : dns.message;
      }
    }
    // never a step back: the second name's TXT record shows under the step already reached
    const index = STEPS.indexOf(step);
    if (step !== 'error' && index < t.shown) step = STEPS[t.shown]!;
    else if (step !== 'error') t.shown = index;
    return { step, message: fit(message), ...(t.error ? { error: fit(t.error) } : {}), job_id: t.job_id };
  }

  get running(): number {
    return [...this.jobs.values()].filter((t) => t.running).length;
  }

  /** Waits up to `timeoutMs` for the running issuances. */
  async stop(timeoutMs: number): Promise<void> {
    const running = [...this.jobs.values()].filter((t) => t.running && t.done).map((t) => t.done!);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.all(running), new Promise((r) => (timer = setTimeout(r, timeoutMs)))]);
    clearTimeout(timer);
  }
}
