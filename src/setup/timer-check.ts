/**
 * Timers that fit short lives. A renewal timer must run several times inside the shortest renewal window in use:
 * twice a day (certbot.timer, autossl-renew.timer's default: 00:00 and 12:00 plus up to 12 h of random delay, so
 * up to 24 h between two runs) is plenty for a 90-day certificate (30-day window), enough for a 6-day one (3-day
 * window), and too little for a window of a few hours (an ARI window, a few-minute test profile).
 * `setup` schedules autossl-renew.timer by the nearest window; `status` warns when the installed timer cannot
 * meet a certificate's window.
 */
import fs from 'node:fs';
import path from 'node:path';

const HOUR = 3_600_000;
const DAY = 24 * HOUR;
/** Runs of the timer a window must hold (one failure, one retry, one margin). */
export const RUNS_PER_WINDOW = 4;

/** What a window needs: the longest gap between two runs of the timer that still fits RUNS_PER_WINDOW runs. */
export function maxGapFor(windowMs: number): number {
  return windowMs / RUNS_PER_WINDOW;
}

export interface TimerSchedule {
  onCalendar: string;
  randomizedDelaySec: number;
  /** Said by setup. */
  describe: string;
}

/** The twice-daily schedule (as certbot.timer). */
export const TWICE_DAILY: TimerSchedule = { onCalendar: '*-*-* 00,12:00:00', randomizedDelaySec: 43_200, describe: 'twice a day' };

/** The schedule for the shortest renewal window in use (null: no certificate yet, twice a day). */
export function scheduleFor(shortestWindowMs: number | null): TimerSchedule {
  if (shortestWindowMs === null || worstGapMs(TWICE_DAILY) <= maxGapFor(shortestWindowMs)) return TWICE_DAILY;
  // every hour, at a random minute (the CA asks for no renewals on the hour); hourly + 10 min random: at most 70 min apart
  if (worstGapMs({ onCalendar: 'hourly', randomizedDelaySec: 600 }) <= maxGapFor(shortestWindowMs))
    return { onCalendar: 'hourly', randomizedDelaySec: 600, describe: 'every hour' };
  return { onCalendar: '*:0/10', randomizedDelaySec: 60, describe: 'every 10 minutes' };
}

/** The longest time between two runs of a timer with this schedule (the calendar's longest gap plus the random delay). */
export function worstGapMs(s: Pick<TimerSchedule, 'onCalendar' | 'randomizedDelaySec'>): number {
  return calendarGapMs(s.onCalendar) + s.randomizedDelaySec * 1000;
}

/**
 * The longest gap between two consecutive times of a systemd OnCalendar expression, for the forms timers use:
 * minutely/hourly/daily/weekly, `*-*-* H1,H2:MM[:SS]`, `*:0/N` (every N minutes), `*-*-* 0/N:MM` (every N hours).
 * Anything else: a day (the cautious answer for a status warning is "assume seldom").
 */
export function calendarGapMs(expr: string): number {
  const e = expr.trim().toLowerCase();
  const named: Record<string, number> = { minutely: 60_000, hourly: HOUR, daily: DAY, weekly: 7 * DAY };
  if (named[e] !== undefined) return named[e]!;
  const everyMinutes = /^\*:(?:\d+)\/(\d+)(?::\d+)?$/.exec(e) ?? /^\*-\*-\* \*:(?:\d+)\/(\d+)(?::\d+)?$/.exec(e);
  if (everyMinutes) return Number(everyMinutes[1]) * 60_000;
  const everyHours = /^(?:\*-\*-\* )?(?:\d+)\/(\d+):\d+(?::\d+)?$/.exec(e);
  if (everyHours) return Number(everyHours[1]) * HOUR;
  const hours = /^(?:\*-\*-\* )?([\d,]+):\d+(?::\d+)?$/.exec(e);
  if (hours) {
    const hs = [...new Set(hours[1]!.split(',').map(Number))].filter((h) => h >= 0 && h < 24).sort((a, b) => a - b);
    if (!hs.length) return DAY;
    let gap = hs[0]! + 24 - hs[hs.length - 1]!;
    for (let i = 1; i < hs.length; i++) gap = Math.max(gap, hs[i]! - hs[i - 1]!);
    return gap * HOUR;
  }
  return DAY;
}

/** A timer unit's schedule: the shortest gap over its OnCalendar lines (several lines: the runs merge), its random delay. */
export function parseTimerUnit(text: string): (Pick<TimerSchedule, 'onCalendar' | 'randomizedDelaySec'> & { gapMs: number }) | null {
  const calendars = [...text.matchAll(/^\s*OnCalendar\s*=\s*(.+?)\s*$/gm)].map((m) => m[1]!).filter((c) => c !== '');
  if (!calendars.length) return null;
  const delay = /^\s*RandomizedDelaySec\s*=\s*(\d+)\s*(s|sec|m|min|h)?\s*$/m.exec(text);
  const unit = delay?.[2] ?? 's';
  const randomizedDelaySec = delay ? Number(delay[1]) * (unit.startsWith('m') ? 60 : unit === 'h' ? 3600 : 1) : 0;
  const gap = Math.min(...calendars.map(calendarGapMs));
  return { onCalendar: calendars.join(' | '), randomizedDelaySec, gapMs: gap + randomizedDelaySec * 1000 };
}

/** The renewal timers installed here, as systemd would run them (drop-ins in <unit>.d/ override the unit's lines). */
export function installedTimers(
  dirs: readonly string[] = ['/etc/systemd/system', '/lib/systemd/system', '/usr/lib/systemd/system'],
): Array<{ name: string; file: string; text: string }> {
  const out: Array<{ name: string; file: string; text: string }> = [];
  for (const name of ['autossl-renew.timer', 'certbot.timer']) {
    const file = dirs.map((d) => path.join(d, name)).find((f) => fs.existsSync(f));
    if (!file) continue;
    let text = fs.readFileSync(file, 'utf8').slice(0, 64 * 1024);
    for (const d of dirs) {
      const dropins = path.join(d, `${name}.d`);
      let confs: string[] = [];
      try {
        confs = fs
          .readdirSync(dropins)
          .filter((f) => f.endsWith('.conf'))
          .sort();
      } catch {
        confs = [];
      }
      // a drop-in's empty "OnCalendar=" resets the list: what follows replaces the unit's
      for (const c of confs) {
        const extra = fs.readFileSync(path.join(dropins, c), 'utf8').slice(0, 64 * 1024);
        text = /^\s*OnCalendar\s*=\s*$/m.test(extra) ? `${text.replace(/^\s*OnCalendar\s*=.*$/gm, '')}\n${extra}` : `${text}\n${extra}`;
      }
    }
    out.push({ name, file, text });
  }
  return out;
}

/** Warnings for certificates whose renewal window the timer cannot meet (too few runs inside it). */
export function timerWarnings(
  timer: { name: string; text: string },
  rows: ReadonlyArray<{ lineage: string; notAfter: string | null; renewFrom: string | null }>,
): string[] {
  const parsed = parseTimerUnit(timer.text);
  if (!parsed) return [];
  const out: string[] = [];
  for (const r of rows) {
    if (!r.notAfter || !r.renewFrom) continue;
    const windowMs = Date.parse(r.notAfter) - Date.parse(r.renewFrom);
    if (!(windowMs > 0) || parsed.gapMs <= maxGapFor(windowMs)) continue;
    out.push(
      `${timer.name} runs up to ${hours(parsed.gapMs)} apart; ${r.lineage}'s renewal window is ${hours(windowMs)}, room for fewer than ${RUNS_PER_WINDOW} runs: run \`autossl setup\` again (it schedules autossl-renew.timer by the nearest window) or give the timer an OnCalendar at least every ${hours(maxGapFor(windowMs))}`,
    );
  }
  return out;
}

function hours(ms: number): string {
  return ms >= 2 * DAY
    ? `${Math.round((ms / DAY) * 10) / 10} days`
    : ms >= 2 * HOUR
      ? `${Math.round((ms / HOUR) * 10) / 10} h`
      : `${Math.round(ms / 60_000)} min`;
}
