/**
 * The fleet hooks' fast path. certbot runs the manual auth and cleanup hooks once per challenge: a batch of 20
 * orders started 40 Node processes, each loading the config and opening the store, and on 2 cores that alone made
 * a fleet's batch twice as slow as one node's (bench/fleet.ts). Inside autossl's own certonly the autossl process
 * that runs certbot is alive and holds the store open, so the hook scripts (plain sh) hand the challenge to it
 * through a spool directory instead: the script writes `auth.<token>` (the validation as its content), this
 * process publishes it and waits for the nodes' acks as the Node hook would, and answers with `auth.<token>.done`
 * (first line the exit status, then the message). Anywhere else (certbot's own renewals, run by its timer) the
 * spool variable is unset and the script runs the Node hook as before; so it does when this process is gone.
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import crypto from 'node:crypto';
import { validToken } from './challenge.js';

export const FLEET_SPOOL_ENV = 'AUTOSSL_FLEET_SPOOL';

const REQUEST = /^(auth|cleanup)\.([A-Za-z0-9_-]{1,200})$/;

/**
 * The sh lines a fleet hook script runs before its `exec node …`: the spool hand-over, taken only when the spool
 * directory exists and the autossl process named by `parentEnv` (the certbot runner's AUTOSSL_CERTONLY_PARENT) is
 * alive. The token becomes a file name only after the same check validToken makes.
 */
export function spoolPrelude(phase: 'auth' | 'cleanup', parentEnv: string): string {
  if (!/^[A-Z_][A-Z0-9_]*$/.test(parentEnv)) throw new Error(`not an environment variable name: ${parentEnv}`);
  return `spool="\${${FLEET_SPOOL_ENV}:-}"
parent="\${${parentEnv}:-}"
case "\${CERTBOT_TOKEN:-}" in ''|*[!A-Za-z0-9_-]*) spool= ;; esac
case "$parent" in ''|*[!0-9]*) spool= ;; esac
if [ -n "$spool" ] && [ -d "$spool" ] && kill -0 "$parent" 2>/dev/null; then
  req="$spool/${phase}.$CERTBOT_TOKEN"
  if printf '%s' "\${CERTBOT_VALIDATION:-}" > "$req.part" && mv -f "$req.part" "$req"; then
    i=0
    while [ ! -e "$req.done" ] && [ "$i" -lt 6000 ] && kill -0 "$parent" 2>/dev/null; do
      sleep 0.05
      i=$((i + 1))
    done
    if [ -e "$req.done" ]; then
      { read -r code; cat; } < "$req.done"
      rm -f "$req.done"
      exit "$code"
    fi
  fi
fi
`;
}

export type SpoolHandler = (phase: 'auth' | 'cleanup', token: string, content: string) => Promise<string>;

/** A spool directory this process answers while an order runs; close() stops and removes it. */
export class HookSpool {
  private readonly seen = new Set<string>();
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private closed = false;
  private readonly running = new Set<Promise<void>>();

  private constructor(
    readonly dir: string,
    private readonly handler: SpoolHandler,
  ) {}

  /** A fresh directory (0700) under `parent`, watched; `env` is what certbot's hooks need to find it. */
  static async open(parent: string, handler: SpoolHandler): Promise<HookSpool> {
    await fsp.mkdir(parent, { recursive: true, mode: 0o700 });
    const dir = path.join(parent, `spool-${process.pid}-${crypto.randomBytes(6).toString('hex')}`);
    await fsp.mkdir(dir, { mode: 0o700 });
    const spool = new HookSpool(dir, handler);
    // inotify says when a request lands; the slow poll covers a missed event (an overflowing queue)
    spool.watcher = fs.watch(dir, () => spool.scan());
    spool.watcher.on('error', () => undefined);
    spool.timer = setInterval(() => spool.scan(), 500);
    spool.timer.unref();
    return spool;
  }

  get env(): Record<string, string> {
    return { [FLEET_SPOOL_ENV]: this.dir };
  }

  private scan(): void {
    if (this.closed) return;
    let names: string[];
    try {
      names = fs.readdirSync(this.dir);
    } catch {
      return;
    }
    for (const name of names) {
      const m = REQUEST.exec(name);
      if (!m || this.seen.has(name) || !validToken(m[2]!)) continue;
      this.seen.add(name);
      const job = this.answer(name, m[1] as 'auth' | 'cleanup', m[2]!).finally(() => this.running.delete(job));
      this.running.add(job);
    }
  }

  private async answer(name: string, phase: 'auth' | 'cleanup', token: string): Promise<void> {
    const file = path.join(this.dir, name);
    let reply: string;
    try {
      const content = await fsp.readFile(file, 'utf8');
      await fsp.rm(file, { force: true });
      reply = `0\n${(await this.handler(phase, token, content)).replace(/\n/g, ' ')}\n`;
    } catch (error) {
      reply = `1\n${(error as Error).message.replace(/\n/g, ' ')}\n`;
    }
    // a new request of the same name (certbot retried) is answered again
    this.seen.delete(name);
    const part = `${file}.done.part`;
    await fsp.writeFile(part, reply, { mode: 0o600 }).catch(() => undefined);
    await fsp.rename(part, `${file}.done`).catch(() => undefined);
  }

  /** Stops answering (after certbot exited: no hook waits any more) and removes the directory. */
  async close(): Promise<void> {
    this.closed = true;
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    await Promise.allSettled([...this.running]);
    await fsp.rm(this.dir, { recursive: true, force: true });
  }
}
