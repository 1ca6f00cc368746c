/**
 * Timers that fit short lives (src/setup/timer-check.ts): the longest gap between two runs of a systemd timer, the
 * schedule `setup` writes for the nearest renewal window, and `status`'s warning when the installed timer (certbot's
 * own, Debian's unit text as shipped) cannot meet a certificate's window.
 */
import { describe, expect, it } from 'vitest';
import { calendarGapMs, parseTimerUnit, scheduleFor, timerWarnings, worstGapMs, TWICE_DAILY } from '../../src/setup/timer-check.js';
import { withSchedule } from '../../src/setup/setup.js';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Debian's /lib/systemd/system/certbot.timer (certbot 2.1 on Debian 12). */
const CERTBOT_TIMER = `[Unit]
Description=Run certbot twice daily

[Timer]
OnCalendar=*-*-* 00,12:00:00
RandomizedDelaySec=43200
Persistent=true

[Install]
WantedBy=timers.target
`;

/** A status row for a certificate issued now with this lifetime, due at 1/3 left (1/2 under 10 days). */
function row(lineage: string, lifetimeMs: number): { lineage: string; notAfter: string; renewFrom: string } {
  const now = Date.parse('2026-12-03T12:00:00Z');
  const window = lifetimeMs < 10 * DAY ? lifetimeMs / 2 : lifetimeMs / 3;
  return { lineage, notAfter: new Date(now + lifetimeMs).toISOString(), renewFrom: new Date(now + lifetimeMs - window).toISOString() };
}

describe('timer schedules', () => {
  it('reads the gaps of the OnCalendar forms timers use', () => {
    expect(calendarGapMs('*-*-* 00,12:00:00')).toBe(12 * HOUR);
    expect(calendarGapMs('*-*-* 03:17')).toBe(DAY);
    expect(calendarGapMs('*-*-* 01,02,20:00:00')).toBe(18 * HOUR);
    expect(calendarGapMs('hourly')).toBe(HOUR);
    expect(calendarGapMs('*:0/10')).toBe(10 * 60_000);
    expect(calendarGapMs('*-*-* 0/6:00:00')).toBe(6 * HOUR);
    expect(calendarGapMs('Mon *-*-* 00:00:00')).toBe(DAY); // unknown: assumed seldom
    expect(parseTimerUnit(CERTBOT_TIMER)).toMatchObject({ randomizedDelaySec: 43_200, gapMs: 24 * HOUR });
  });

  it('setup schedules by the nearest window: twice a day for 90/45/6-day certificates, more often for a window of hours', () => {
    expect(scheduleFor(null)).toBe(TWICE_DAILY);
    expect(scheduleFor(30 * DAY)).toBe(TWICE_DAILY); // 90 days
    expect(scheduleFor(15 * DAY)).toBe(TWICE_DAILY); // 45 days
    expect(scheduleFor(4 * DAY)).toBe(TWICE_DAILY);
    const sixDay = scheduleFor(3 * DAY); // 160 hours: due after 80 h, a 3.3-day window: 24 h gaps leave under 4 runs
    expect(worstGapMs(sixDay)).toBeLessThanOrEqual((3 * DAY) / 4);
    expect(sixDay.onCalendar).toBe('hourly');
    const hours = scheduleFor(6 * HOUR); // an ARI window of a few hours
    expect(worstGapMs(hours)).toBeLessThanOrEqual(1.5 * HOUR);
    const minutes = scheduleFor(20 * 60_000); // pebble's few-minute test profile
    expect(minutes.onCalendar).toBe('*:0/10');
    const unit = withSchedule(CERTBOT_TIMER.replace('certbot', 'autossl renew'), sixDay);
    expect(unit).toContain('OnCalendar=hourly\nRandomizedDelaySec=600\n');
    expect(parseTimerUnit(unit)!.gapMs).toBeLessThanOrEqual((3 * DAY) / 4);
  });

  it("status warns when the installed timer cannot meet a certificate's window, only then", () => {
    const rows = [row('ninety.example', 90 * DAY), row('tls.example', 45 * DAY), row('short.example', 160 * HOUR), row('minutes.example', 7 * 60_000)];
    const warnings = timerWarnings({ name: 'certbot.timer', text: CERTBOT_TIMER }, rows);
    expect(warnings).toHaveLength(2);
    expect(warnings[0]).toMatch(/^certbot\.timer runs up to 24 h apart; short\.example's renewal window is 3\.3 days/);
    expect(warnings[1]).toMatch(/minutes\.example's renewal window is 4 min/);
    expect(timerWarnings({ name: 'autossl-renew.timer', text: withSchedule(CERTBOT_TIMER, scheduleFor(80 * HOUR)) }, rows.slice(0, 3))).toEqual([]);
  });
});
