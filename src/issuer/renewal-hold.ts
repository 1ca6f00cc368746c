/**
 * Keeps certbot's own renewals (certbot.timer, cron, an admin's `certbot renew`) away from a lineage while its names
 * back off (src/renewal/backoff.ts): each of those runs would be one more failed authorization towards the CA's
 * pause, which only its web portal lifts. certbot skips a lineage whose renewal config says `autorenew = False` in
 * [renewalparams] (every certbot from 0.x to 5.x: storage.py's autorenewal_is_enabled), unless told
 * --force-renewal, which only autossl's own passes use, and only after the back-off has ended.
 *
 * autossl writes the key with a comment line of its own just above it and removes exactly those two lines when the
 * back-off ends, so the file is byte-identical to what it was. An `autorenew` the admin wrote is never touched.
 * certbot rewrites [renewalparams] on a renewal and drops keys it does not know, `autorenew` among them: only a
 * success renews, and a success ends the back-off anyway.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';

const MARK = '# autossl: back-off until ';
/** autossl's two lines, wherever they are in the file. */
const OURS = /^# autossl: back-off until [^\n]*\nautorenew = False\n/m;

/** The two lines autossl keeps in [renewalparams] while the lineage's names back off until `until`. */
export function holdLines(until: number): string {
  return `${MARK}${new Date(until).toISOString()} (failed authorizations: certbot's own renewals skip this certificate; autossl removes these two lines)\nautorenew = False\n`;
}

/** What the file would read with the lineage held until `until` (null: released); null when nothing changes. */
export function withHold(text: string, until: number | null): string | null {
  const ours = OURS.exec(text);
  const without = ours ? text.slice(0, ours.index) + text.slice(ours.index + ours[0].length) : text;
  if (until === null) return ours ? without : null;
  // the admin's own autorenew (either way) is theirs to keep
  if (/^\s*autorenew\s*=/m.test(without)) return ours ? without : null;
  const section = /^\[renewalparams\][^\n]*\n/m.exec(without);
  if (!section) return null; // not a renewal config certbot wrote: nothing to hold
  const next = without.slice(0, section.index + section[0].length) + holdLines(until) + without.slice(section.index + section[0].length);
  return next === text ? null : next;
}

/**
 * Holds (until a time) or releases (null) lineage renewals in `renewalConf`; atomically, the file's mode kept, and
 * not over a version certbot wrote meanwhile. Returns whether the file changed.
 */
export function holdRenewal(renewalConf: string, until: number | null): boolean {
  let text: string;
  let before: fs.Stats;
  try {
    before = fs.statSync(renewalConf);
    text = fs.readFileSync(renewalConf, 'utf8');
  } catch {
    return false;
  }
  const next = withHold(text, until);
  if (next === null) return false;
  const temp = path.join(path.dirname(renewalConf), `.${path.basename(renewalConf)}.autossl-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(temp, next, { mode: before.mode & 0o777 });
  try {
    const now = fs.statSync(renewalConf);
    // certbot renewed (and rewrote the file) since it was read: its version stands; the next pass looks again
    if (now.ino !== before.ino || now.mtimeMs !== before.mtimeMs || now.size !== before.size) {
      fs.rmSync(temp, { force: true });
      return false;
    }
    fs.renameSync(temp, renewalConf);
  } catch (error) {
    fs.rmSync(temp, { force: true });
    throw error;
  }
  return true;
}
