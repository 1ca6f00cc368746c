/**
 * The config editor: every change to nginx's files is planned, written and validated (`nginx -t`) under one lock,
 * against the files as they are at that moment, and never across a certbot call.
 *
 * Why one lock for the whole config and not one per file: `nginx -t` judges every file at once, so an edit of
 * a.conf validated while another process's half-done edit of b.conf is on disk would be judged by b's mistakes.
 * The locked section is short (plan, write, one `nginx -t`): everything slow (pre-flight, certbot, TLS checks)
 * happens outside it.
 *
 * Requests that arrive while a section runs are served together in the next one: their edits are written one
 * after another (each planned on the tree as the previous one left it), then one `nginx -t` judges them all. When
 * it fails, the request whose file nginx names is taken out; when nginx's message does not say whose edit broke
 * it, the group is bisected. The others go on.
 */
import path from 'node:path';
import { AutoSslError, toAutoSslError } from '../errors.js';
import { acquireLock } from '../lock.js';
import type { NginxControl } from './control.js';
import type { FileEdit } from './edit.js';
import type { EditTransaction } from './transaction.js';
import type { NginxTree } from './tree.js';

export interface EditRequest {
  /** The domain's transaction: its journal undoes these writes on rollback. */
  tx: EditTransaction;
  /** Who asks (the domain), for messages. */
  label: string;
  /** Plans the edits against the tree as it is now; called again if the group must be re-applied. */
  plan(tree: NginxTree): FileEdit[];
}

interface Pending {
  request: EditRequest;
  resolve(edits: FileEdit[]): void;
  reject(error: unknown): void;
}

interface Applied {
  pending: Pending;
  mark: number;
  edits: FileEdit[];
}

export interface EditorOptions {
  /** The lock file (under stateDir) guarding nginx's config against concurrent autossl processes. */
  lockFile: string;
  lockTimeoutMs: number;
  nginx: NginxControl;
  loadTree(): NginxTree;
}

export class ConfigEditor {
  private queue: Pending[] = [];
  private running: Promise<void> | null = null;
  /** How many `nginx -t` runs the editor made (for tests and the batch report). */
  validations = 0;

  constructor(private readonly opts: EditorOptions) {}

  /** Plans and writes the request's edits under the config lock, then validates them. Resolves to the edits made. */
  apply(request: EditRequest): Promise<FileEdit[]> {
    return new Promise<FileEdit[]>((resolve, reject) => {
      this.queue.push({ request, resolve, reject });
      this.schedule();
    });
  }

  private schedule(): void {
    if (this.running) return;
    this.running = (async () => {
      // one turn of the event loop lets requests made at the same moment share the section
      await new Promise((r) => setImmediate(r));
      while (this.queue.length) await this.section(this.queue.splice(0));
      this.running = null;
    })();
  }

  /** Runs `fn` under the config lock (recovery, rollback, the deploy hook use it for their own writes). */
  async locked<T>(fn: () => Promise<T>): Promise<T> {
    const lock = await acquireLock(this.opts.lockFile, { timeoutMs: this.opts.lockTimeoutMs, what: 'The nginx config' });
    try {
      return await fn();
    } finally {
      await lock.release();
    }
  }

  /** Takes back a transaction's writes (since `mark`) under the lock. Returns the files changed back. */
  revert(tx: EditTransaction, mark = 0): Promise<string[]> {
    return this.locked(() => tx.revert(mark));
  }

  private async section(group: Pending[]): Promise<void> {
    let lock;
    try {
      lock = await acquireLock(this.opts.lockFile, { timeoutMs: this.opts.lockTimeoutMs, what: 'The nginx config' });
    } catch (error) {
      for (const p of group) p.reject(error);
      return;
    }
    try {
      const applied: Applied[] = [];
      for (const p of group) {
        const a = await this.write(p);
        if (a) applied.push(a);
      }
      if (applied.length) await this.validate(applied);
    } catch (error) {
      for (const p of group) p.reject(error); // settled promises ignore a second call
    } finally {
      await lock.release();
    }
  }

  /** Plans and writes one request; on failure it is rejected with its own writes taken back. */
  private async write(p: Pending): Promise<Applied | null> {
    const mark = p.request.tx.mark();
    try {
      const edits = p.request.plan(this.opts.loadTree());
      for (const e of edits) await p.request.tx.write(e.file, e.before, e.after);
      return { pending: p, mark, edits };
    } catch (error) {
      await p.request.tx.revert(mark).catch(() => undefined);
      p.reject(error);
      return null;
    }
  }

  private async test(): Promise<AutoSslError | null> {
    this.validations++;
    try {
      await this.opts.nginx.test();
      return null;
    } catch (error) {
      return toAutoSslError(error);
    }
  }

  private async takeBack(list: readonly Applied[]): Promise<void> {
    for (const a of [...list].reverse()) await a.pending.request.tx.revert(a.mark);
  }

  private async validate(applied: Applied[]): Promise<void> {
    let failure = await this.test();
    let left = [...applied];
    // nginx names the file it choked on: when one request alone edited that file, it is the one
    while (failure && failure.code === 'NGINX_TEST_FAILED') {
      const file = failure.details.file as string | undefined;
      const owners = file ? left.filter((a) => a.edits.some((e) => path.resolve(e.file) === path.resolve(file))) : [];
      if (owners.length !== 1) break;
      const culprit = owners[0]!;
      await culprit.pending.request.tx.revert(culprit.mark);
      culprit.pending.reject(failure);
      left = left.filter((a) => a !== culprit);
      if (!left.length) return;
      failure = await this.test();
    }
    if (!failure) {
      for (const a of left) a.pending.resolve(a.edits);
      return;
    }
    if (failure.code !== 'NGINX_TEST_FAILED' || left.length === 1) {
      await this.takeBack(left);
      for (const a of left) a.pending.reject(failure);
      return;
    }
    // nginx's message does not say whose edit broke it: find out by halves, on a config that passes without them
    await this.takeBack(left);
    const baseline = await this.test();
    if (baseline) {
      const error = new AutoSslError(
        'NGINX_TEST_FAILED',
        `nginx -t fails even without autossl's edits: ${baseline.message.replace(/^nginx -t failed: /, '')}`,
        {
          hint: 'The nginx config was already broken before autossl touched it: fix what nginx reports, then run again.',
          details: baseline.details,
        },
      );
      for (const a of left) a.pending.reject(error);
      return;
    }
    await this.bisect(left.map((a) => a.pending));
  }

  private async bisect(group: Pending[]): Promise<void> {
    if (!group.length) return;
    const applied: Applied[] = [];
    for (const p of group) {
      const a = await this.write(p);
      if (a) applied.push(a);
    }
    if (!applied.length) return;
    const failure = await this.test();
    if (!failure) {
      for (const a of applied) a.pending.resolve(a.edits);
      return;
    }
    await this.takeBack(applied);
    if (applied.length === 1) {
      applied[0]!.pending.reject(failure);
      return;
    }
    const half = Math.ceil(applied.length / 2);
    await this.bisect(applied.slice(0, half).map((a) => a.pending));
    await this.bisect(applied.slice(half).map((a) => a.pending));
  }
}
