/**
 * Runs a snippet against the built modules (dist/, as `npm test` builds first) in a child node process with a
 * wall-clock limit and a memory limit. A synchronous hang (a blocking open of a FIFO, a read of /dev/zero, an
 * exponential walk) cannot be interrupted inside the test runner: in a child it fails its test instead of
 * hanging the suite, and it cannot eat the machine's memory.
 */
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { execa } from 'execa';

const DIST = path.resolve(import.meta.dirname, '../../dist/src');

/** `import ... from ${dist('nginx/tree.js')}` inside a snippet. */
export function dist(module: string): string {
  return JSON.stringify(pathToFileURL(path.join(DIST, module)).href);
}

export interface Isolated<T> {
  /** What the snippet printed as its last line, parsed as JSON (undefined when it did not finish). */
  result?: T;
  timedOut: boolean;
  exitCode: number | undefined;
  ms: number;
  stderr: string;
}

/** The snippet is an ES module body; it prints its answer with `console.log(JSON.stringify(...))`. */
export async function runIsolated<T>(body: string, timeoutMs = 15_000): Promise<Isolated<T>> {
  const started = performance.now();
  // ulimit -v: 2 GB of address space, so a read that never ends dies quickly instead of filling the machine
  const run = await execa('sh', ['-c', 'ulimit -v 2000000; exec node --input-type=module -e "$0"', body], {
    reject: false,
    timeout: timeoutMs,
    killSignal: 'SIGKILL',
  });
  const ms = performance.now() - started;
  const last = String(run.stdout).trim().split('\n').pop() ?? '';
  let result: T | undefined;
  try {
    result = last ? (JSON.parse(last) as T) : undefined;
  } catch {
    result = undefined;
  }
  return { result, timedOut: run.timedOut === true, exitCode: run.exitCode, ms, stderr: String(run.stderr) };
}

/** The code and message of what a call threw, or `ok` with its value. */
export const CATCH = `
const outcome = (fn) => { try { return { ok: fn() }; } catch (e) { return { code: e.code, message: String(e.message) }; } };
`;
