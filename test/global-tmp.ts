/**
 * vitest globalSetup: every suite run gets one temporary directory of its own, as TMPDIR for the test workers and
 * everything they start (os.tmpdir() reads it), removed when the run ends; a run left about 275 autossl-*
 * directories in /tmp. AUTOSSL_KEEP_RIG=1 keeps it, to look into a failure.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

export default function setup(): () => void {
  const parent = os.tmpdir();
  const dir = fs.mkdtempSync(path.join(parent, 'autossl-run-'));
  // nginx's workers (www-data) read document roots and certificates below it
  fs.chmodSync(dir, 0o755);
  process.env.TMPDIR = dir;
  return () => {
    process.env.TMPDIR = parent;
    if (process.env.AUTOSSL_KEEP_RIG) {
      process.stderr.write(`AUTOSSL_KEEP_RIG: the run's temporary files are kept in ${dir}\n`);
      return;
    }
    fs.rmSync(dir, { recursive: true, force: true });
  };
}
