import path from 'node:path';
import { expect } from 'vitest';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { parseJson } from './json.js';

/**
 * The serial nginx serves for a name over TLS, asked until it is `want` (for up to 5 s). Right after a reload a new
 * connection may still reach an old worker for a moment (nginx reloads gracefully), whatever the run itself saw.
 */
export async function servedEventually(name: string, want: string, host = '127.0.0.1', port = 443): Promise<string | null> {
  let got: string | null = null;
  for (let i = 0; i < 50; i++) {
    got = await servedSerial(host, port, name).catch(() => null);
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}

/**
 * `issue <domain> --json` run by `cli`, expected to succeed: its result has no error, it exits 0, and nginx serves
 * the certificate certbot keeps under `certbotConfigDir`. Returns the run and that certificate's serial.
 */
export async function expectIssuedAndServed<R extends { stdout: string; stderr: string; exitCode?: number }>(
  cli: (args: string[]) => Promise<R>,
  certbotConfigDir: string,
  domain: string,
): Promise<{ run: R; serial: string }> {
  const run = await cli(['issue', domain, '--json']);
  const result = parseJson<{ results: Array<{ ok: boolean; error?: { code: string; message: string } }> }>(run.stdout).results[0]!;
  expect(result.error, run.stderr).toBeUndefined();
  expect(run.exitCode).toBe(0);
  const serial = readCertificate(path.join(certbotConfigDir, 'live', domain, 'cert.pem')).serial;
  expect(await servedEventually(domain, serial)).toBe(serial);
  return { run, serial };
}
