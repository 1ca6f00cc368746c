import type { StageEvent } from '../pipeline/context.js';
import type { DomainResult } from '../pipeline/pipeline.js';
import { fmtMs, humanEvent, out, write } from './output.js';

/**
 * What a person sees while a batch runs: on a terminal one live line (done / failed / running of N, elapsed, the
 * slowest domain and its stage), rewritten in place; otherwise (a pipe, a log, NO_COLOR) a plain line per domain
 * as it finishes. Warnings and the engine's own messages (recovery) always get a line. `--verbose` shows every
 * stage of every domain instead.
 */
export class Progress {
  private readonly started = Date.now();
  private readonly stageOf = new Map<string, { stage: string; since: number }>();
  private readonly finished = new Map<string, boolean>();
  private timer: NodeJS.Timeout | undefined;
  private readonly live: boolean;
  private shown = '';

  constructor(
    private readonly total: number,
    private readonly verbose: boolean,
  ) {
    this.live = !verbose && process.stdout.isTTY === true && !process.env.NO_COLOR && process.env.TERM !== 'dumb';
    if (this.live) {
      this.draw();
      this.timer = setInterval(() => this.draw(), 250);
      this.timer.unref();
    }
  }

  event = (e: StageEvent): void => {
    if (this.verbose) return humanEvent(e);
    if (e.domain === '*' || e.status === 'warning' || (e.status === 'error' && (e.stage === 'rollback' || e.stage === 'undo'))) {
      this.clear();
      humanEvent(e);
      return;
    }
    if (!e.plugin && e.status === 'start') this.stageOf.set(e.domain, { stage: e.stage, since: Date.now() });
  };

  done(r: DomainResult): void {
    this.finished.set(r.domain, r.ok);
    this.stageOf.delete(r.domain);
    if (!this.live && !this.verbose && this.total > 1) out(`${r.ok ? 'done' : 'FAIL'}  ${r.domain} (${this.finished.size}/${this.total}, ${fmtMs(r.ms)})`);
  }

  private line(): string {
    const failed = [...this.finished.values()].filter((ok) => !ok).length;
    const running = this.stageOf.size;
    const slowest = [...this.stageOf.entries()].sort((a, b) => a[1].since - b[1].since)[0];
    const elapsed = ((Date.now() - this.started) / 1000).toFixed(1);
    return `  ${this.finished.size - failed} done, ${failed} failed, ${running} running of ${this.total}  ${elapsed} s${slowest ? `  slowest: ${slowest[0]} (${slowest[1].stage}, ${((Date.now() - slowest[1].since) / 1000).toFixed(1)} s)` : ''}`;
  }

  private draw(): void {
    const text = this.line();
    write(process.stdout, `\r${text.padEnd(this.shown.length)}`);
    this.shown = text;
  }

  private clear(): void {
    if (!this.live || !this.shown) return;
    write(process.stdout, `\r${' '.repeat(this.shown.length)}\r`);
    this.shown = '';
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.clear();
  }
}
