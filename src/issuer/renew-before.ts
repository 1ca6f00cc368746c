/**
 * certbot before 4.1 renews a lineage when less than `renew_before_expiry` is left, and that defaults to 30 days
 * whatever the lifetime: its RENEWER_DEFAULTS are merged under every renewal config, so even certbot 4.0.0's
 * "1/3 of the lifetime" code is never reached (Debian 13's 4.0.0; 4.1 dropped the default). A certificate that
 * lives 30 days or less (the `shortlived` profile's 6 days, or a CA's short default) is then due on every run of
 * certbot's timer: renewed twice a day, past Let's Encrypt's limit of 5 identical certificates a week, after which
 * every renewal fails. So after an order autossl writes the lineage's own `renew_before_expiry` (seconds, a fraction
 * of its lifetime, the same as status's due: src/renewal/due.ts) into certbot's renewal config, where certbot
 * documents the key and keeps it across renewals. A value the admin wrote is left alone, and so is every lineage
 * that lives longer than 30 days (certbot renews those early, never in a loop).
 */
import fs from 'node:fs';
import path from 'node:path';
import crypto from 'node:crypto';
import { windowFractionFor } from '../renewal/due.js';
import { atLeast, type CertbotVersion } from './certbot-version.js';

const DAY_S = 86_400;
const CERTBOT_DEFAULT_S = 30 * DAY_S;

/** Whether a certificate of this lifetime may need the line: only then is certbot's version asked (a python start). */
export function mayNeedRenewBefore(lifetimeMs: number): boolean {
  return lifetimeMs > 0 && lifetimeMs <= CERTBOT_DEFAULT_S * 1000;
}

/** The `renew_before_expiry` line autossl writes for a certificate of this lifetime, or null when none is needed. */
export function renewBeforeFor(version: CertbotVersion | null, lifetimeMs: number, windowFraction: number): string | null {
  // longer lives: certbot renews earlier than autossl's window would (a 45-day certificate after 15 days), which
  // costs an order now and then but never loops; only what is due the moment it is issued needs the line
  if (!version || atLeast(version, 4, 1) || lifetimeMs <= 0 || lifetimeMs > CERTBOT_DEFAULT_S * 1000) return null;
  const seconds = Math.floor((lifetimeMs / 1000) * windowFractionFor(lifetimeMs, windowFraction));
  if (seconds >= CERTBOT_DEFAULT_S) return null;
  return `renew_before_expiry = ${Math.max(seconds, 60)} seconds`;
}

/**
 * Writes the line at the top of the renewal config (certbot's own keys sit before [renewalparams]) unless the file
 * sets `renew_before_expiry` already; atomically, the file's mode kept. Returns what it wrote, or null.
 */
export function keepRenewBefore(renewalConf: string, line: string | null): string | null {
  if (!line || !renewalConf) return null;
  let text: string;
  try {
    text = fs.readFileSync(renewalConf, 'utf8');
  } catch {
    return null;
  }
  if (/^\s*renew_before_expiry\s*=/m.test(text)) return null;
  const mode = fs.statSync(renewalConf).mode & 0o777;
  const temp = path.join(path.dirname(renewalConf), `.${path.basename(renewalConf)}.autossl-${process.pid}-${crypto.randomBytes(4).toString('hex')}`);
  fs.writeFileSync(temp, `${line}\n${text}`, { mode });
  fs.renameSync(temp, renewalConf);
  return line;
}
