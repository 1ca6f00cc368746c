/**
 * When a certificate is due: a fraction of its own lifetime before it expires, so 90-, 64-, 45- and 6-day
 * certificates are each judged by their own clock (Let's Encrypt's lifetimes shrink: 64 days in 2027, 45 in 2028,
 * 160-hour `shortlived` now). The configured fraction (renewal.windowFraction, 1/3 by default: a 90-day certificate
 * is due after 60 days) applies from 10 days of lifetime up; below that, half the lifetime (a 6-day certificate is
 * due after 3 days), as certbot 4 does: a few hours of a short life are too little margin for one failed attempt.
 */

const DAY = 86_400_000;

/** Lifetimes shorter than this are due at half their lifetime (certbot >= 4.0 uses the same cut). */
export const SHORT_LIFETIME_MS = 10 * DAY;

/** The fraction of the lifetime (counted back from notAfter) that is the renewal window. */
export function windowFractionFor(lifetimeMs: number, configured: number): number {
  return lifetimeMs < SHORT_LIFETIME_MS ? Math.max(configured, 1 / 2) : configured;
}

/** When the renewal window opens (ms epoch). */
export function renewalWindowStart(notBefore: number, notAfter: number, windowFraction: number): number {
  const lifetime = notAfter - notBefore;
  return notAfter - lifetime * windowFractionFor(lifetime, windowFraction);
}

/** Whether a certificate valid from notBefore to notAfter is due at `now`. */
export function isDue(notBefore: number, notAfter: number, windowFraction: number, now: number): boolean {
  return now >= renewalWindowStart(notBefore, notAfter, windowFraction);
}
