/** What the command line prints: stdout/stderr that survive a closed pipe, errors, diffs, stage lines, result JSON, exit codes. */
import { diffBytes, unifiedDiff } from '../diff.js';
import { type AutoSslError, ERROR_CODES, errorKind } from '../errors.js';
import type { StageEvent } from '../pipeline/context.js';
import type { DomainResult } from '../pipeline/pipeline.js';

// A reader that stops early (`autossl status | head -1`) closes the pipe: the output is dropped from then on, but
// the command itself goes on to its end (an issue must not stop half-way because nobody reads its progress).
const closed = new Set<NodeJS.WriteStream>();
for (const stream of [process.stdout, process.stderr]) {
  stream.on('error', (error: NodeJS.ErrnoException) => {
    if (error.code !== 'EPIPE') throw error;
    closed.add(stream);
  });
}
export const write = (stream: NodeJS.WriteStream, data: string | Uint8Array): boolean => (closed.has(stream) ? true : stream.write(data));
export const out = (s: string): boolean => write(process.stdout, s + '\n');
export const err = (s: string): boolean => write(process.stderr, s + '\n');

export function printError(e: AutoSslError, json: boolean): void {
  if (json) out(JSON.stringify({ ok: false, error: e.toJSON() }));
  else {
    err(`error ${e.code}: ${e.message}`);
    err(`  hint: ${e.hint}`);
  }
}

/** A diff holds the file's own bytes (latin1 strings): written as bytes, so `patch` applies it to that file. */
export function printDiff(diff: string): void {
  write(process.stdout, diffBytes(diff));
}

export function fmtMs(ms: number | undefined): string {
  if (ms === undefined) return '';
  return ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
}

export function humanEvent(event: StageEvent): void {
  if (event.plugin && event.status !== 'info' && event.status !== 'warning') return; // per-plugin timings go to --json
  const who = event.domain === '*' ? '' : event.domain;
  if (event.status === 'done') out(`  ${who.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}`);
  else if (event.status === 'error')
    out(
      `  ${who.padEnd(28)} ${event.stage.padEnd(12)} ${fmtMs(event.ms).padStart(9)}  FAILED${event.stage === 'rollback' || event.stage === 'undo' ? `: ${event.message}` : ''}`,
    );
  else if ((event.status === 'info' || event.status === 'warning') && event.message)
    out(`  ${who.padEnd(28)} ${''.padEnd(12)} ${''.padStart(9)}  ${event.status === 'warning' ? 'warning: ' : ''}${event.message}`);
}

export function resultJson(r: DomainResult, dryRun: boolean) {
  return {
    domain: r.domain,
    names: r.names,
    ok: r.ok,
    error: r.error?.toJSON(),
    lineage: r.lineage && !dryRun ? { name: r.lineage.name, fullchain: r.lineage.fullchain, privkey: r.lineage.privkey } : undefined,
    serial: r.certificate?.serial,
    reused: r.reused,
    notes: r.notes,
    changes: r.edits.map((e) => ({ file: e.file, changes: e.changes })),
    ...(dryRun ? { diffs: r.files.map((f) => unifiedDiff(f.file, f.before, f.after)) } : {}),
    rolledBack: r.rolledBack,
    ms: Math.round(r.ms),
    stages: r.events
      .filter((e) => e.status === 'done' || e.status === 'error')
      .map((e) => ({ stage: e.stage, plugin: e.plugin, status: e.status, ms: Math.round(e.ms ?? 0) })),
  };
}

/**
 * A command's exit code from the codes its domains failed with: 0 none, 2 when every failure is bad input
 * (VHOST_NOT_FOUND, DOMAIN_INVALID...: the same in every command), 1 otherwise.
 */
export function exitFor(failures: ReadonlyArray<string | undefined>): number {
  if (!failures.length) return 0;
  return failures.every((c) => c !== undefined && c in ERROR_CODES && errorKind(c as keyof typeof ERROR_CODES) === 'input') ? 2 : 1;
}
