/**
 * vitest globalSetup: every suite run gets one temporary directory of its own, as TMPDIR for the test workers and
 * everything they start (os.tmpdir() reads it), removed when the run ends; a run left about 275 autossl-*
 * directories in /tmp. AUTOSSL_KEEP_RIG=1 keeps it, to look into a failure.
 *
 * Also the pebble every rig of the run uses: Debian sid's 2.10 (ARI, profiles), fetched once and cached by
 * scripts/pebble-sid.sh, unless AUTOSSL_PEBBLE names one (.ci/run sets it the same way). As root only: the rig
 * needs root anyway, and the unit tier (`npm run test:unit`, no root, no network) starts none.
 */
import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const parent = os.tmpdir();
  const dir = fs.mkdtempSync(path.join(parent, 'autossl-run-'));
  // nginx's workers (www-data) read document roots and certificates below it
  fs.chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  if (!process.env.AUTOSSL_PEBBLE && process.getuid?.() === 0) {
    const script = path.resolve(import.meta.dirname, '../scripts/pebble-sid.sh');
    process.env.AUTOSSL_PEBBLE = execFileSync('bash', [script], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] }).trim();
  }
  return () => {
    process.env.TMPDIR = parent;
    if (process.env.AUTOSSL_KEEP_RIG) {
      process.stderr.write(`AUTOSSL_KEEP_RIG: the run's temporary files are kept in ${dir}\n`);
      return;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
