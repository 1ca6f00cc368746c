/**
 * Shared by the fault matrix and the hostile-input suites: driving the built CLI, reading its answer (one JSON
 * document, or NDJSON whose last line is the summary), and the checks every fault case makes: config files
 * byte-identical (sha256) or valid, nginx still serving, the outcome a coded error (never INTERNAL, never a stack
 * trace, never exit 0), no journal and no lock left behind.
 */
import fs from 'node:fs';
import http from 'node:http';
import path from 'node:path';
import { execa, type ResultPromise } from 'execa';
import { expect } from 'vitest';
import { sha256 } from '../../src/nginx/transaction.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';

export const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

export interface CliRun {
  exitCode: number | undefined;
  signal: string | undefined;
  stdout: string;
  stderr: string;
}

/** Runs the CLI with `--config` and waits for it (never rejects). */
export async function cli(
  args: readonly string[],
  config: string,
  options: { env?: Record<string, string>; extendEnv?: boolean; timeoutMs?: number } = {},
): Promise<CliRun> {
  // --config first: after a "--" it would be a positional
  const run = await execa('node', [CLI, '--config', config, ...args], {
    reject: false,
    env: options.env,
    extendEnv: options.extendEnv ?? true,
    timeout: options.timeoutMs ?? 60_000,
    stdin: 'ignore',
  });
  return { exitCode: run.exitCode, signal: run.signal ?? undefined, stdout: String(run.stdout), stderr: String(run.stderr) };
}

/** Starts the CLI without waiting (to kill it). */
export function spawnCli(args: readonly string[], config: string, env: Record<string, string> = {}): ResultPromise {
  return execa('node', [CLI, '--config', config, ...args], { reject: false, env, stdin: 'ignore' });
}

/**
 * The CLI's JSON answer: the whole output when it is one document, else the last line (`issue --json` may print
 * one event per line before its summary).
 */
export function answer(stdout: string): Record<string, unknown> {
  const text = stdout.trim();
  try {
    return JSON.parse(text) as Record<string, unknown>;
  } catch {
    const last =
      text
        .split('\n')
        .filter((l) => l.trim())
        .pop() ?? '';
    return JSON.parse(last) as Record<string, unknown>;
  }
}

export interface CodedError {
  code: string;
  message: string;
  hint: string;
}

/** The error of a run: the command's own, or the first failed domain's. */
export function errorOf(run: CliRun): CodedError {
  const a = answer(run.stdout) as { error?: CodedError; results?: Array<{ ok: boolean; error?: CodedError }> };
  const error = a.error ?? a.results?.find((r) => !r.ok)?.error;
  if (!error) throw new Error(`no error in the answer: ${run.stdout.slice(0, 2000)} ${run.stderr.slice(0, 2000)}`);
  return error;
}

const STACK = /\n\s+at .+(:\d+:\d+\)?|\(node:)/;

/** The outcome every fault case must have: a coded error among `codes`, exit 1 or 2, no INTERNAL, no stack trace. */
export function expectCoded(run: CliRun, codes: readonly string[], label = ''): CodedError {
  const all = `${run.stdout}\n${run.stderr}`;
  expect(run.signal, `${label}: killed by a signal`).toBeUndefined();
  expect([1, 2], `${label}: exit code ${run.exitCode}\n${all.slice(0, 3000)}`).toContain(run.exitCode);
  expect(all, `${label}: INTERNAL`).not.toMatch(/INTERNAL/);
  expect(all, `${label}: a stack trace`).not.toMatch(STACK);
  const error = errorOf(run);
  expect(codes, `${label}: ${error.code}: ${error.message}`).toContain(error.code);
  expect(error.hint, label).toBeTruthy();
  return error;
}

/** sha256 of every file under `dirs` (recursively), keyed by path: the config's "byte-identical" snapshot. */
export function snapshot(...entries: string[]): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (p: string): void => {
    const st = fs.lstatSync(p, { throwIfNoEntry: false });
    if (!st) return;
    if (st.isDirectory()) for (const n of fs.readdirSync(p).sort()) walk(path.join(p, n));
    else if (st.isFile()) out.set(p, sha256(fs.readFileSync(p)));
    else if (st.isSymbolicLink()) out.set(p, `-> ${fs.readlinkSync(p)}`);
  };
  for (const e of entries) walk(e);
  return out;
}

export function expectSameSnapshot(before: Map<string, string>, after: Map<string, string>, label = ''): void {
  expect(Object.fromEntries(after), label).toEqual(Object.fromEntries(before));
}

/** An HTTP GET on 127.0.0.1 with a Host header: proves nginx still serves the site. */
export function httpGet(host: string, port = 80, urlPath = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, path: urlPath, headers: { Host: host }, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error(`GET http://${host}${urlPath} timed out`)));
    req.on('error', reject);
    req.end();
  });
}

/** Reloads the test's nginx and waits until `host` is served on port 80 (nginx reloads asynchronously). */
export async function reloadAndServe(nginxArgs: readonly string[], host: string): Promise<void> {
  await execa(BINARIES.nginx, [...nginxArgs, '-s', 'reload']);
  const deadline = Date.now() + 5000;
  while (
    (await httpGet(host).then(
      (r) => r.status,
      () => 0,
    )) !== 200
  ) {
    if (Date.now() > deadline) throw new Error(`nginx does not serve ${host} after a reload`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** Journals left under `<stateDir>/journal` (its `locks` entry aside). */
export function journals(stateDir: string): string[] {
  const dir = path.join(stateDir, 'journal');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n !== 'locks') : [];
}

/** Lock files left under `<stateDir>/locks`. */
export function locks(stateDir: string): string[] {
  const dir = path.join(stateDir, 'locks');
  return fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n.endsWith('.lock')) : [];
}

/** Temp files autossl's atomic writes use (`.<name>.autossl-<pid>-<hex>`), left in `dir`. */
export function tempFiles(dir: string): string[] {
  return fs.readdirSync(dir).filter((n) => n.includes('.autossl-'));
}

export async function waitFor(what: string, test: () => boolean, timeoutMs = 30_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!test()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/**
 * A test plugin that, when AUTOSSL_TEST_HANG_AT names a hook, taps it before everything else, writes the hook's
 * name to AUTOSSL_TEST_HANG_MARKER and never finishes (a timer keeps the process alive until it is killed).
 * Without the variable it does nothing, so the same config serves `recover` and the issue that follows.
 */
export const HANG_PLUGIN = `import fs from 'node:fs';
export default {
  name: 'fault-hang',
  apply(hooks) {
    const at = process.env.AUTOSSL_TEST_HANG_AT;
    if (!at) return;
    hooks[at].tapPromise({ name: 'fault-hang', stage: -1000 }, () => {
      fs.writeFileSync(process.env.AUTOSSL_TEST_HANG_MARKER, at);
      return new Promise(() => setInterval(() => {}, 1000));
    });
  },
};
`;

/** A vhost on 127.0.0.1:80 whose routing hides /.well-known/ (so issue must add the challenge location). */
export const PHP_SITE = `server {
    listen 127.0.0.1:80;
    server_name {name};
    root {root};
    index index.html;

    location / {
        try_files $uri $uri/ /index.php?$query_string;
    }

    location ~ /\\. {
        deny all;
    }
}
`;

/** A plain static vhost: the challenge is served as it is (no challenge edit). */
export const STATIC_SITE = `server {
    listen 127.0.0.1:80;
    server_name {name};
    root {root};
    index index.html;
}
`;
