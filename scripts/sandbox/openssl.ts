/**
 * A self-signed ECDSA P-256 certificate and its key, made by openssl (`req -x509`): the throwaway certificates of
 * the benches, fuzzers and tests (a CA of their own, a lineage as certbot leaves one, a chosen serial), one command
 * line instead of a copy in each of them.
 */
import { execa } from 'execa';
import { BINARIES } from './rig.js';

export async function selfSignedEcdsa(o: {
  key: string;
  cert: string;
  days: number;
  subject: string;
  /** More `req` options after the subject (`-addext ...`, `-set_serial ...`). */
  extra?: readonly string[];
  /** Where relative paths are (the key and certificate may be named relative to it). */
  cwd?: string;
}): Promise<void> {
  await execa(
    BINARIES.openssl,
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-keyout',
      o.key,
      '-out',
      o.cert,
      '-days',
      String(o.days),
      '-subj',
      o.subject,
      ...(o.extra ?? []),
    ],
    { cwd: o.cwd },
  );
}
