/**
 * The agent's request authentication: the Opterius panel's scheme, exactly as its AgentService signs.
 *
 *     X-Timestamp: 2026-05-01T12:00:00+00:00          (RFC 3339)
 *     X-Signature: lowercase hex HMAC-SHA256(token, timestamp + METHOD + path-without-query + raw body)
 *
 * The raw body bytes are hashed, never a re-serialisation: PHP's json_encode escapes "/" as "\/", JSON.stringify
 * does not, so parsing and printing again would change the MAC. The query string is not signed (the panel strips
 * it), so no route takes an instruction from it that changes anything.
 *
 * Refused: a missing header, a timestamp that is not RFC 3339 or more than 300 s from this clock, a signature
 * that is not 64 lowercase hex digits, or one no configured token produces. Comparison is constant-time
 * (crypto.timingSafeEqual on equal-length digests) and every token is tried, so neither timing nor the order
 * of tokens tells which one nearly matched. Tokens come from a file only root can read; they are never logged.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { AutoSslError } from '../errors.js';
import { readRegularFile } from '../fsutil.js';

/** How far X-Timestamp may be from this clock, either way. */
export const MAX_SKEW_SECONDS = 300;
/** Shorter secrets are ignored (an HMAC key must not be guessable); the panel makes 64 characters. */
export const MIN_TOKEN_LENGTH = 16;

export interface Token {
  /** A short, non-secret name for logs and rate limits: the first 12 hex digits of sha256(token). */
  id: string;
  key: Buffer;
}

export interface TokenFile {
  tokens: Token[];
  /** Lines ignored, and why (never the secret itself). */
  ignored: string[];
}

const RFC3339 = /^(\d{4})-(\d\d)-(\d\d)[Tt](\d\d):(\d\d):(\d\d)(\.\d{1,9})?([Zz]|[+-]\d\d:\d\d)$/;

/**
 * Reads the tokens file: one secret per line, `#` comments and blank lines ignored. Refused when group or others
 * may read it (the secrets sign certificate changes), when it is not a regular file, or when it holds no usable
 * token.
 */
export function loadTokens(file: string): TokenFile {
  // mode and owner are judged on the descriptor that is read (fstat), not on the path a moment before
  let read: { data: Buffer; stat: fs.Stats };
  try {
    read = readRegularFile(file, { maxBytes: 64 * 1024, code: 'CONFIG_INVALID', what: "agent's tokens file" });
  } catch (error) {
    if (error instanceof AutoSslError) throw error;
    throw new AutoSslError(
      'CONFIG_INVALID',
      `The agent's tokens file ${file} cannot be read: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}.`,
      {
        hint: `Create it with one secret per line, readable by root only: (umask 077; openssl rand -hex 32 > ${file}), and give the same secret to the panel.`,
      },
    );
  }
  const st = read.stat;
  if ((st.mode & 0o077) !== 0) {
    const who = [st.mode & 0o070 ? 'its group' : '', st.mode & 0o007 ? 'others' : ''].filter(Boolean).join(' and ');
    throw new AutoSslError(
      'CONFIG_INVALID',
      `The agent's tokens file ${file} is readable by ${who} (mode ${(st.mode & 0o777).toString(8)}); the agent does not use secrets others can read.`,
      {
        hint: `chmod 600 ${file} (and keep it owned by the user running the agent).`,
      },
    );
  }
  const euid = process.geteuid?.();
  if (euid !== undefined && st.uid !== euid) {
    throw new AutoSslError(
      'CONFIG_INVALID',
      `The agent's tokens file ${file} belongs to uid ${st.uid}, not to the user running the agent (uid ${euid}): whoever owns it can change the secrets.`,
      { hint: `chown ${euid} ${file}` },
    );
  }
  const text = read.data.toString('utf8');
  const tokens: Token[] = [];
  const ignored: string[] = [];
  text.split(/\r?\n/).forEach((raw, i) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    if (line.length < MIN_TOKEN_LENGTH) {
      ignored.push(`line ${i + 1}: shorter than ${MIN_TOKEN_LENGTH} characters`);
      return;
    }
    if (/\s/.test(line)) {
      ignored.push(`line ${i + 1}: contains whitespace`);
      return;
    }
    const key = Buffer.from(line, 'utf8');
    if (!tokens.some((t) => t.key.equals(key))) tokens.push({ id: crypto.createHash('sha256').update(key).digest('hex').slice(0, 12), key });
  });
  if (!tokens.length) {
    throw new AutoSslError('CONFIG_INVALID', `The agent's tokens file ${file} holds no usable token${ignored.length ? ` (${ignored.join('; ')})` : ''}.`, {
      hint: `Put one secret of at least ${MIN_TOKEN_LENGTH} characters per line: openssl rand -hex 32 >> ${file}`,
    });
  }
  return { tokens, ignored };
}

/**
 * The tokens in force, re-read when the file changes: a token taken out of the file is refused within 2 s, a new
 * one accepted, without a restart (README "Rotating tokens"). fs.watch on the file's directory sees an editor's
 * rename as well as an in-place write; a stat every second catches what a watch misses (network filesystems,
 * a watch limit reached). A file that can no longer be used (removed, readable by others, no usable token) leaves
 * NO token in force: the agent refuses every signed call until it is fixed, rather than trust secrets an admin
 * meant to revoke. `reload()` is also what SIGHUP calls.
 */
export interface TokenLog {
  info(msg: string): void;
  warn(msg: string): void;
  error(msg: string): void;
}

export class TokenSource {
  private tokens: readonly Token[];
  private seen: string;
  private watcher: fs.FSWatcher | null = null;
  private timer: NodeJS.Timeout | null = null;
  private pending: NodeJS.Timeout | null = null;

  /** Lines of the first read that were ignored, and why. */
  readonly ignored: readonly string[];
  private log: TokenLog = { warn() {}, error() {}, info() {} };

  /** Reads the file once: throws CONFIG_INVALID as loadTokens does (the agent does not start without tokens). */
  constructor(readonly file: string) {
    this.seen = this.stamp();
    const first = loadTokens(file);
    this.tokens = first.tokens;
    this.ignored = first.ignored;
  }

  /** The tokens a request is checked against now. */
  get current(): readonly Token[] {
    return this.tokens;
  }

  /** Re-reads the file; returns the number of tokens in force after. */
  reload(why = 'changed'): number {
    this.seen = this.stamp();
    try {
      const next = loadTokens(this.file);
      for (const w of next.ignored) this.log.warn(`tokens file ${this.file}: ${w} (ignored)`);
      const before = new Set(this.tokens.map((t) => t.id));
      const after = new Set(next.tokens.map((t) => t.id));
      const added = [...after].filter((id) => !before.has(id)).length;
      const removed = [...before].filter((id) => !after.has(id)).length;
      this.tokens = next.tokens;
      if (added || removed) this.log.info(`tokens file ${this.file} ${why}: ${next.tokens.length} token(s) in force (${added} added, ${removed} removed)`);
    } catch (error) {
      this.tokens = [];
      this.log.error(`tokens file ${this.file} ${why} and cannot be used: ${(error as Error).message} Every signed call is refused until it is fixed.`);
    }
    return this.tokens.length;
  }

  /** Starts watching the file (fs.watch, and a stat every `pollMs`); what happens is logged to `log`. */
  watch(log: TokenLog, pollMs = 1000): void {
    this.log = log;
    const schedule = (): void => {
      // an editor writes in steps: read once the burst of events is over
      if (this.pending) clearTimeout(this.pending);
      this.pending = setTimeout(() => {
        this.pending = null;
        if (this.stamp() !== this.seen) this.reload();
      }, 50);
      this.pending.unref();
    };
    try {
      const base = path.basename(this.file);
      this.watcher = fs.watch(path.dirname(this.file), { persistent: false }, (_event, name) => {
        if (!name || name.toString() === base) schedule();
      });
      this.watcher.on('error', () => this.watcher?.close());
    } catch {
      // no watch here (a watch limit, a filesystem without it): the stat below still sees changes
    }
    this.timer = setInterval(() => {
      if (this.stamp() !== this.seen) this.reload();
    }, pollMs);
    this.timer.unref();
  }

  close(): void {
    this.watcher?.close();
    if (this.timer) clearInterval(this.timer);
    if (this.pending) clearTimeout(this.pending);
  }

  /** What changes when the file does: its inode (a rename), size, and times. */
  private stamp(): string {
    try {
      const st = fs.statSync(this.file, { bigint: true });
      return `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}:${st.mode}:${st.uid}`;
    } catch (error) {
      return `missing:${(error as NodeJS.ErrnoException).code ?? ''}`;
    }
  }
}

/** The signature of a request as the panel computes it. */
export function sign(key: Buffer | string, timestamp: string, method: string, pathOnly: string, body: Buffer | string): string {
  return crypto.createHmac('sha256', key).update(timestamp).update(method).update(pathOnly).update(body).digest('hex');
}

/** RFC 3339 in the panel's form (Carbon's toRfc3339String: seconds, "+00:00"). */
export function rfc3339(date = new Date()): string {
  return `${date.toISOString().slice(0, 19)}+00:00`;
}

/** Parses an RFC 3339 timestamp strictly; NaN when it is not one. */
export function parseRfc3339(value: string): number {
  const m = RFC3339.exec(value);
  if (!m) return NaN;
  const [, , mo, d, h, mi, s] = m.map(Number) as number[];
  if (mo! < 1 || mo! > 12 || d! < 1 || d! > 31 || h! > 23 || mi! > 59 || s! > 60) return NaN;
  return Date.parse(value.replace(/t/, 'T').replace(/z$/, 'Z'));
}

export interface SignedRequest {
  method: string;
  /** The request target as sent, query included (it is cut off here, as the panel does). */
  url: string;
  timestamp: string | undefined;
  signature: string | undefined;
  body: Buffer;
}

function refuse(message: string): never {
  throw new AutoSslError('AGENT_AUTH_FAILED', message);
}

/**
 * Checks what can be checked before the body is read: both headers there, the timestamp fresh, the signature
 * 64 lowercase hex digits. Throws AGENT_AUTH_FAILED saying what is wrong.
 */
export function checkSignatureHeaders(timestamp: string | undefined, signature: string | undefined, now = Date.now()): asserts timestamp is string {
  if (timestamp === undefined || signature === undefined)
    refuse(`Missing ${timestamp === undefined ? 'X-Timestamp' : 'X-Signature'} header: every route but /health is signed.`);
  if (timestamp.length > 40) refuse('X-Timestamp is not an RFC 3339 timestamp.');
  const at = parseRfc3339(timestamp);
  if (Number.isNaN(at)) refuse(`X-Timestamp ${JSON.stringify(timestamp)} is not an RFC 3339 timestamp (like 2026-05-01T12:00:00+00:00).`);
  const skew = now - at;
  if (Math.abs(skew) > MAX_SKEW_SECONDS * 1000)
    refuse(
      `X-Timestamp is ${Math.round(Math.abs(skew) / 1000)} s ${skew > 0 ? 'old' : 'in the future'}; at most ${MAX_SKEW_SECONDS} s either way is accepted (check both clocks: NTP).`,
    );
  // the length first, then the form: 64 lowercase hex digits, as PHP's hash_hmac writes it
  if (signature.length !== 64) refuse(`X-Signature must be 64 hex digits (HMAC-SHA256), got ${Math.min(signature.length, 999)} characters.`);
  if (!/^[0-9a-f]{64}$/.test(signature)) refuse('X-Signature must be lowercase hex digits.');
}

/** Verifies a request; returns the token that signed it, or throws AGENT_AUTH_FAILED saying what is wrong. */
export function verifyRequest(req: SignedRequest, tokens: readonly Token[], now = Date.now()): Token {
  const { timestamp, signature } = req;
  checkSignatureHeaders(timestamp, signature, now);
  if (signature === undefined) return refuse('Missing X-Signature header.');
  const pathOnly = req.url.split('?')[0]!;
  const given = Buffer.from(signature, 'hex');
  let match: Token | null = null;
  for (const token of tokens) {
    const want = crypto.createHmac('sha256', token.key).update(timestamp).update(req.method.toUpperCase()).update(pathOnly).update(req.body).digest();
    // every token is tried: which one matched (or came close) shows in no timing
    if (crypto.timingSafeEqual(want, given) && !match) match = token;
  }
  if (!match) refuse('X-Signature does not match: the token, the method, the path or the body differs from what was signed.');
  return match;
}

/** A token bucket per token: `perSecond` sustained, `burst` at once. */
export class RateLimiter {
  private readonly buckets = new Map<string, { tokens: number; at: number }>();
  constructor(
    private readonly perSecond: number,
    private readonly burst: number,
  ) {}

  /** Takes one request; returns 0 when allowed, else the seconds to wait. */
  take(id: string, now = Date.now()): number {
    const b = this.buckets.get(id) ?? { tokens: this.burst, at: now };
    b.tokens = Math.min(this.burst, b.tokens + ((now - b.at) / 1000) * this.perSecond);
    b.at = now;
    this.buckets.set(id, b);
    if (b.tokens >= 1) {
      b.tokens -= 1;
      return 0;
    }
    return Math.max(1, Math.ceil((1 - b.tokens) / this.perSecond));
  }
}

/**
 * The agent's per-token limits by kind of call: changes get `perSecond`/`burst`; read-only calls (a panel's status
 * loop over every domain, every page load) a budget of their own, far larger; an issue-async is never refused here:
 * it is queued (the intake bounds the queue with agent.maxQueued).
 */
export class TokenBudgets {
  private readonly changes: RateLimiter;
  private readonly reads: RateLimiter;
  constructor(readonly limits: { perSecond: number; burst: number; readPerSecond: number; readBurst: number }) {
    this.changes = new RateLimiter(limits.perSecond, limits.burst);
    this.reads = new RateLimiter(limits.readPerSecond, limits.readBurst);
  }

  /** Takes one call of a route; returns 0 when allowed, else the seconds to wait. */
  take(route: { mutating: boolean; queued?: boolean }, token: string, now = Date.now()): number {
    if (route.queued) return 0;
    return (route.mutating ? this.changes : this.reads).take(token, now);
  }

  /** Why a call was refused, for the 429's message. */
  refusal(route: { mutating: boolean }, token: string): string {
    const l = this.limits;
    return route.mutating
      ? `Too many requests with token ${token}: at most ${l.perSecond} a second (burst ${l.burst}).`
      : `Too many read-only requests with token ${token}: at most ${l.readPerSecond} a second (burst ${l.readBurst}).`;
  }
}
