/**
 * One `nginx -t` and one reload per phase of a batch. Domains of one `issue` run pass the pipeline each at their
 * own pace; left alone, each challenge edit and each HTTPS edit would be its own locked section and reload. The
 * gate holds a domain's edit at the start of the config editor until every other domain of the batch still running
 * has reached the same stage (or a window has passed since the first one waited), then lets them all through at
 * once: the editor writes them in one section with one `nginx -t`, and their reload requests, made in the same
 * moment, share one reload.
 */
import type { DomainContext } from './context.js';
import { HOOK_ORDER, type StageName } from './hooks.js';

interface Waiter {
  ctx: DomainContext;
  stage: number;
  release: () => void;
}

export interface GateWindows {
  /** The challenge edits: pre-flight of the slowest domain ends within about its timeout. */
  challenge: number;
  /** The HTTPS edits: orders finish at different moments; edits arriving within this window share a reload. */
  vhost: number;
}

export class BatchGate {
  /** Each domain's current stage (index in HOOK_ORDER); removed when it finishes. */
  private readonly stages = new Map<DomainContext, number>();
  private readonly waiters: Waiter[] = [];
  private readonly timers = new Map<number, NodeJS.Timeout>();

  constructor(private readonly windows: GateWindows) {}

  /** The pipeline says where a domain is. */
  enter(ctx: DomainContext, stage: StageName): void {
    this.stages.set(ctx, HOOK_ORDER.indexOf(stage));
    this.check();
  }

  /** The domain is done (or failed): nobody waits for it any more. */
  leave(ctx: DomainContext): void {
    this.stages.delete(ctx);
    for (const w of this.waiters.filter((x) => x.ctx === ctx)) this.releaseOne(w);
    this.check();
  }

  /** Waits until the batch's other running domains have reached this domain's stage, or the window has passed. */
  gate(ctx: DomainContext): Promise<void> {
    const stage = this.stages.get(ctx);
    if (stage === undefined || this.stages.size <= 1) return Promise.resolve();
    const name = HOOK_ORDER[stage];
    const window = name === 'challenge' ? this.windows.challenge : this.windows.vhost;
    return new Promise<void>((release) => {
      this.waiters.push({ ctx, stage, release });
      if (!this.timers.has(stage)) {
        const timer = setTimeout(() => this.releaseStage(stage), window);
        timer.unref();
        this.timers.set(stage, timer);
      }
      this.check();
    });
  }

  private releaseOne(w: Waiter): void {
    const i = this.waiters.indexOf(w);
    if (i >= 0) this.waiters.splice(i, 1);
    w.release();
  }

  private releaseStage(stage: number): void {
    clearTimeout(this.timers.get(stage));
    this.timers.delete(stage);
    for (const w of this.waiters.filter((x) => x.stage === stage)) this.releaseOne(w);
  }

  private check(): void {
    for (const stage of new Set(this.waiters.map((w) => w.stage))) {
      // everyone still running is at this stage or past it: nobody else will join this section
      const behind = [...this.stages.values()].some((s) => s < stage);
      if (!behind) this.releaseStage(stage);
    }
  }
}
