/**
 * Running nginx: `nginx -t` against the real main config, reload, version. Always an argument array, started off
 * the event loop (see spawn.ts), never a shell. Reloads are coalesced: every request made while one is pending
 * shares it, so a batch of many domains reloads nginx once. A reload returns once nginx's old workers stopped
 * accepting (reload-wait.ts).
 */
import { AutoSslError } from '../errors.js';
import { spawnOffLoop } from '../spawn.js';
import { acceptingWorkers, pidFileOf, waitOldWorkersRetired } from './reload-wait.js';

/** How long a reload may take to retire the old workers before autossl goes on (the verify stage still checks). */
const RELOAD_SETTLE_MS = 10_000;

/** What the signals nginx dies of mean, as a shell would say it (the worker gives only the name). */
const SIGNAL_NAMES: Record<string, string> = {
  SIGSEGV: 'segmentation fault',
  SIGABRT: 'aborted',
  SIGBUS: 'bus error',
  SIGKILL: 'killed',
  SIGTERM: 'terminated',
  SIGILL: 'illegal instruction',
};

export interface NginxSettings {
  binary: string;
  /** The main config file nginx loads (absolute). */
  config: string;
  /** The reload command as an argument array; default: [binary, '-c', config, '-s', 'reload']. */
  reloadCommand?: string[];
  /** Extra arguments for every nginx call (e.g. ['-p', prefix]). */
  extraArgs?: string[];
}

export interface NginxProblem {
  message: string;
  file?: string;
  line?: number;
}

/** Pulls nginx's own words and the file:line out of its stderr ("nginx: [emerg] ... in /f.conf:12"). */
export function parseNginxError(stderr: string): NginxProblem {
  const lines = stderr.split('\n').filter((l) => /\[(emerg|alert|crit|error)\]/.test(l));
  const first = lines[0] ?? stderr.trim().split('\n')[0] ?? 'nginx failed';
  const m = / in (\S+):(\d+)\s*$/.exec(first);
  const message = first.replace(/^nginx: /, '');
  return m ? { message, file: m[1], line: Number(m[2]) } : { message };
}

export class NginxControl {
  private versionCache: Promise<[number, number, number]> | null = null;
  private reloading: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  /**
   * Runs the reload command under the config lock (set by the engine): nginx reads every file when it reloads, and
   * another run's edit written but not yet validated (or being taken back) must never be what it reads.
   */
  private underLock: <T>(fn: () => Promise<T>) => Promise<T> = (fn) => fn();

  constructor(readonly settings: NginxSettings) {}

  /** The lock that config writes take (ConfigEditor.locked); reloads wait for it and hold it while nginx reads. */
  setReloadLock(lock: <T>(fn: () => Promise<T>) => Promise<T>): void {
    this.underLock = lock;
  }

  private baseArgs(): string[] {
    return [...(this.settings.extraArgs ?? []), '-c', this.settings.config];
  }

  /** Runs nginx off the event loop (see spawn.ts); the result is shaped as execa's was. */
  private async run(args: string[], timeout = 30_000) {
    const r = await spawnOffLoop(this.settings.binary, args, { timeoutMs: timeout }).result;
    const signal = r.signal ?? undefined;
    return {
      exitCode: r.error ? undefined : (r.exitCode ?? undefined),
      stdout: r.stdout,
      stderr: r.stderr,
      failed: r.error !== undefined || r.exitCode !== 0,
      code: r.errorCode,
      message: r.error ?? (r.timedOut ? `timed out after ${timeout / 1000} s` : undefined),
      signal,
      timedOut: r.timedOut,
      signalDescription: signal ? SIGNAL_NAMES[signal] : undefined,
    };
  }

  /** `nginx -t`: throws NGINX_TEST_FAILED with nginx's message, file and line. */
  async test(): Promise<void> {
    const result = await this.run([...this.baseArgs(), '-t', '-q']);
    if (result.signal || result.timedOut) {
      // it ran and died (nginx 1.22 dies of SIGSEGV on an include loop): a broken config or nginx, not a missing one
      const how = result.timedOut
        ? `took longer than 30 s and was stopped (${result.signal ?? 'SIGTERM'})`
        : `was killed by ${result.signal}${result.signalDescription ? ` (${result.signalDescription})` : ''}`;
      throw new AutoSslError('NGINX_TEST_FAILED', `nginx -t ${how}.`, {
        hint: 'nginx crashed or hung reading the config: run "nginx -t" by hand; an include loop or a broken module are the usual causes. The files were restored.',
        details: { signal: result.signal, stderr: String(result.stderr) },
      });
    }
    if ((result as { code?: string }).code === 'ENOENT' || (result.failed && result.exitCode === undefined)) {
      throw new AutoSslError('NGINX_NOT_FOUND', `Cannot run ${this.settings.binary}: ${result.message ?? 'not found'}`);
    }
    if (result.exitCode !== 0) {
      const problem = parseNginxError(String(result.stderr));
      throw new AutoSslError('NGINX_TEST_FAILED', `nginx -t failed: ${problem.message}`, { details: { ...problem, stderr: String(result.stderr) } });
    }
  }

  private async reloadNow(): Promise<void> {
    const [bin, ...args] = this.settings.reloadCommand ?? [this.settings.binary, ...this.baseArgs(), '-s', 'reload'];
    const pidFile = pidFileOf(this.settings.config, this.settings.extraArgs);
    // under the lock until the old workers stopped accepting: the master reads the config after the signal, and
    // until then an old worker answers with the old config (reload-wait.ts)
    const result = await this.underLock(async () => {
      const before = pidFile ? acceptingWorkers(pidFile) : [];
      const run = await spawnOffLoop(bin!, args, { timeoutMs: 30_000 }).result;
      if (!run.error && run.exitCode === 0 && before.length) await waitOldWorkersRetired(before, RELOAD_SETTLE_MS);
      return run;
    });
    if (result.error) throw new AutoSslError('NGINX_RELOAD_FAILED', `Reload failed: cannot run ${bin}: ${result.error}`);
    if (result.exitCode !== 0) {
      throw new AutoSslError('NGINX_RELOAD_FAILED', `Reload failed: ${parseNginxError(String(result.stderr)).message}`, {
        details: { stderr: String(result.stderr) },
      });
    }
  }

  /**
   * Reloads nginx. Calls made while a reload is queued share it; a call made while one is running queues the
   * next one (the running reload may have read the config before the caller's change).
   */
  reload(): Promise<void> {
    if (this.queued) return this.queued;
    const start = async (): Promise<void> => {
      await new Promise((r) => setImmediate(r)); // let concurrent callers join
      this.queued = null;
      const run = this.reloadNow();
      this.reloading = run;
      try {
        await run;
      } finally {
        if (this.reloading === run) this.reloading = null;
      }
    };
    const previous = this.reloading;
    this.queued = previous ? previous.catch(() => undefined).then(start) : start();
    return this.queued;
  }

  /** The installed nginx's version, e.g. [1, 22, 1]: decides how HTTP/2 is spelled. */
  version(): Promise<[number, number, number]> {
    this.versionCache ??= (async () => {
      const result = await this.run(['-v']);
      const m = /nginx\/(\d+)\.(\d+)\.(\d+)/.exec(String(result.stderr) + String(result.stdout));
      if (!m) throw new AutoSslError('NGINX_NOT_FOUND', `Cannot run ${this.settings.binary} -v: ${String(result.stderr).trim() || result.message}`);
      return [Number(m[1]), Number(m[2]), Number(m[3])] as [number, number, number];
    })();
    return this.versionCache;
  }
}
