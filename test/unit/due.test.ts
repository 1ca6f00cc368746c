/**
 * Due-ness relative to each certificate's lifetime (issue 23 item 1): the last third of it, the last half under
 * 10 days. Let's Encrypt's notAfter is notBefore + lifetime - 1 s; the table uses exact lifetimes.
 */
import { describe, expect, it } from 'vitest';
import { isDue, renewalWindowStart } from '../../src/renewal/due.js';
import { classify } from '../../src/renewal/status.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
const issued = Date.parse('2026-12-01T00:00:00Z');

describe('due-ness relative to the lifetime', () => {
  it.each([
    // lifetime, due after (from notBefore), days left then
    { name: '6-day (160 h shortlived)', lifetime: 160 * HOUR, dueAfter: 80 * HOUR },
    { name: '45-day (tlsserver)', lifetime: 45 * DAY, dueAfter: 30 * DAY },
    { name: '64-day (classic from 2027-02-10)', lifetime: 64 * DAY, dueAfter: (64 * DAY * 2) / 3 },
    { name: '90-day (classic)', lifetime: 90 * DAY, dueAfter: 60 * DAY },
  ])('$name certificate is due after $dueAfter ms', ({ lifetime, dueAfter }) => {
    const notAfter = issued + lifetime;
    expect(renewalWindowStart(issued, notAfter, 1 / 3)).toBeCloseTo(issued + dueAfter, -1);
    expect(isDue(issued, notAfter, 1 / 3, issued + dueAfter - 60_000)).toBe(false);
    expect(isDue(issued, notAfter, 1 / 3, issued + dueAfter + 60_000)).toBe(true);
    const cert = { notBefore: issued, notAfter, lastOutcome: null, consecutiveFailures: 0 };
    expect(classify(cert, issued + dueAfter - 60_000, 1 / 3)).toBe('ok');
    expect(classify(cert, issued + dueAfter + 60_000, 1 / 3)).toBe('due');
  });

  it('a 6-day certificate is due after 3 days, not in its last 2 (a fixed third), nor its last 30 days (always)', () => {
    const notAfter = issued + 6 * DAY;
    expect(isDue(issued, notAfter, 1 / 3, issued + 3 * DAY + 1000)).toBe(true);
    expect(isDue(issued, notAfter, 1 / 3, issued + 3 * DAY - 1000)).toBe(false);
  });

  it('the 10-day cut: 9.9 days renews at half, 10 days at the configured third', () => {
    expect(renewalWindowStart(issued, issued + 9.9 * DAY, 1 / 3)).toBeCloseTo(issued + 4.95 * DAY, -1);
    expect(renewalWindowStart(issued, issued + 10 * DAY, 1 / 3)).toBeCloseTo(issued + (20 / 3) * DAY, -1);
  });

  it('a configured window larger than half is kept for short lifetimes too', () => {
    expect(renewalWindowStart(issued, issued + 6 * DAY, 0.75)).toBeCloseTo(issued + 1.5 * DAY, -1);
  });
});
