/**
 * `autossl setup`: what makes a server renew with no one watching, done once: certbot's hooks installed (every
 * renewal runs autossl's deploy, pre and post hooks), one renewal timer (certbot.timer when it is active, else
 * autossl's own systemd timer: never both), and with --agent the agent's unit and tokens file. Each unit runs the
 * autossl that ran setup, with the config it used. Prints what it did; `--dry-run` only says it.
 */
import crypto from 'node:crypto';
import fs from 'node:fs';
import { firstInSmallFiles } from '../fsutil.js';
import path from 'node:path';
import { execa } from 'execa';
import type { AutoSsl } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { agentNoFileLimit } from '../agent/limits.js';
import { which } from './discover.js';
import { installedTimers, scheduleFor, timerWarnings, type TimerSchedule } from './timer-check.js';

export interface SetupOptions {
  agent?: boolean;
  dryRun?: boolean;
  /** Where unit files go (default /etc/systemd/system). */
  systemdDir?: string;
  /** Where cron's jobs are looked for (default /etc/cron.d, where Debian's certbot package puts its own). */
  cronDir?: string;
  /** Whether systemd runs this machine (default: /run/systemd/system exists); for tests. */
  systemd?: boolean;
  /** Whether certbot.timer is active (default: systemctl is asked); for tests. */
  certbotTimer?: boolean;
}

export interface SetupResult {
  done: string[];
  /** What the admin still has to do (systemd not running here, ...). */
  todo: string[];
}

/** The shipped unit files, from the package (systemd/ beside dist/). */
function unitSource(name: string): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 5; i++) {
    const file = path.join(dir, 'systemd', name);
    if (fs.existsSync(file)) return fs.readFileSync(file, 'utf8');
    dir = path.dirname(dir);
  }
  throw new AutoSslError('INTERNAL', `The unit file ${name} is missing from the installed package.`);
}

/** A unit made to run this autossl (node and its cli.js, wherever npm put them) with this config. */
function unitFor(name: string, config: string): string {
  const cli = fs.realpathSync(process.argv[1]!);
  const command = `${process.execPath} ${cli}`;
  return unitSource(name)
    .replace(/\/usr\/local\/bin\/autossl/g, command)
    .replace(/--config \/etc\/autossl\/autossl\.config\.json/g, `--config ${config}`);
}

/** The timer unit with the schedule the nearest renewal window needs (the shipped unit runs twice a day). */
export function withSchedule(unit: string, s: TimerSchedule): string {
  return unit
    .replace(/^OnCalendar=.*$/m, `OnCalendar=${s.onCalendar}`)
    .replace(/^RandomizedDelaySec=.*$/m, `RandomizedDelaySec=${s.randomizedDelaySec}`)
    .replace(/^Description=.*$/m, `Description=Run autossl renew ${s.describe}`);
}

async function systemctl(args: string[]): Promise<{ ok: boolean; out: string }> {
  const bin = which('systemctl');
  if (!bin) return { ok: false, out: 'systemctl not found' };
  const run = await execa(bin, args, { reject: false, timeout: 30_000 });
  return { ok: run.exitCode === 0, out: `${String(run.stdout)}${String(run.stderr)}`.trim() };
}

/** Whether systemd runs this machine (a container often has no systemd as PID 1). */
function systemdRunning(): boolean {
  return fs.existsSync('/run/systemd/system');
}

/**
 * A cron job that already runs `certbot renew` (Debian's /etc/cron.d/certbot does when systemd is not PID 1): it
 * runs autossl's hooks each time, so advising a second schedule would renew twice. The file and its line, if any.
 */
export function cronRenewal(cronDir = '/etc/cron.d'): string | null {
  return firstInSmallFiles(cronDir, 256 * 1024, (file, text) => {
    const line = text.split('\n').find((l) => !/^\s*#/.test(l) && /\bcertbot\b[^#]*\brenew\b/.test(l));
    return line ? `${file}: ${line.trim().slice(0, 200)}` : null;
  });
}

export async function runSetup(engine: AutoSsl, options: SetupOptions = {}): Promise<SetupResult> {
  const config = engine.config.filepath;
  if (!config)
    throw new AutoSslError('CONFIG_NOT_FOUND', 'autossl setup needs a config file: the units and hooks it installs run with it.', {
      hint: 'Run "autossl init" first (it writes /etc/autossl/autossl.config.yaml), then "autossl setup".',
    });
  const result: SetupResult = { done: [], todo: [] };
  const dir = options.systemdDir ?? '/etc/systemd/system';
  const systemd = options.systemd ?? systemdRunning();
  const write = (file: string, text: string, mode = 0o644): void => {
    if (options.dryRun) return;
    fs.mkdirSync(path.dirname(file), { recursive: true });
    fs.writeFileSync(`${file}.tmp`, text, { mode });
    fs.renameSync(`${file}.tmp`, file);
  };

  // 1. certbot's hooks: every renewal, whoever starts it, runs autossl's
  if (options.dryRun) result.done.push(`would install certbot hooks in ${engine.config.certbot.configDir}/renewal-hooks/{deploy,pre,post}/autossl`);
  else for (const hook of await engine.installHooks()) result.done.push(`installed certbot hook ${hook}`);

  // 2. one renewal timer, often enough for the nearest renewal window in use
  const rows = await engine.status().then(
    (r) => r.certificates,
    () => [],
  );
  const windows = rows
    .filter((r) => r.notAfter && r.renewFrom)
    .map((r) => Date.parse(r.notAfter!) - Date.parse(r.renewFrom!))
    .filter((w) => w > 0);
  const schedule = scheduleFor(windows.length ? Math.min(...windows) : null);
  const certbotTimer =
    options.certbotTimer !== undefined
      ? { ok: options.certbotTimer, out: '' }
      : systemd
        ? await systemctl(['is-active', '--quiet', 'certbot.timer'])
        : { ok: false, out: '' };
  const cron = systemd ? null : cronRenewal(options.cronDir);
  if (cron) {
    result.done.push(`cron runs certbot renew already (${cron}): it runs autossl's hooks each time (no autossl-renew schedule added: never two)`);
    result.todo.push(
      'put "autossl renew --pass-only &&" before certbot in that cron line (autossl\'s own pass: back-offs kept from certbot, revoked and ARI renewals): cron files are not edited by autossl',
    );
  } else if (certbotTimer.ok) {
    result.done.push("certbot.timer is active: it renews, and runs autossl's hooks each time (autossl-renew.timer not enabled: never both)");
    // autossl's own pass before each of the timer's runs (systemd/certbot-autossl.conf)
    if (engine.config.issuer === 'certbot') {
      const dropIn = path.join(dir, 'certbot.service.d', 'autossl.conf');
      write(dropIn, unitFor('certbot-autossl.conf', config));
      result.done.push(`${options.dryRun ? 'would write' : 'wrote'} ${dropIn}: autossl renew --pass-only runs before each certbot renew of certbot.timer`);
      if (systemd && !options.dryRun) {
        const reloaded = await systemctl(['daemon-reload']);
        if (!reloaded.ok) result.todo.push(`systemctl daemon-reload failed: ${reloaded.out}`);
      }
    }
    for (const t of installedTimers().filter((x) => x.name === 'certbot.timer')) result.todo.push(...timerWarnings(t, rows));
  } else {
    for (const unit of ['autossl-renew.service', 'autossl-renew.timer']) {
      write(path.join(dir, unit), unit.endsWith('.timer') ? withSchedule(unitFor(unit, config), schedule) : unitFor(unit, config));
      result.done.push(`${options.dryRun ? 'would write' : 'wrote'} ${path.join(dir, unit)}`);
    }
    if (!systemd)
      result.todo.push('systemd does not run this machine: run "autossl renew" twice a day from cron instead (e.g. "17 3,15 * * * root autossl renew")');
    else if (!options.dryRun) {
      const enabled = await systemctl(['daemon-reload']).then(() => systemctl(['enable', '--now', 'autossl-renew.timer']));
      if (enabled.ok) result.done.push(`enabled autossl-renew.timer (${schedule.describe})`);
      else result.todo.push(`systemctl enable --now autossl-renew.timer failed: ${enabled.out}`);
    }
  }

  // 3. the agent
  if (options.agent) {
    const tokens = engine.config.agent.tokensFile;
    if (!fs.existsSync(tokens)) {
      write(tokens, `# autossl agent tokens: one per line; give the same to the panel\n${crypto.randomBytes(32).toString('hex')}\n`, 0o600);
      result.done.push(`${options.dryRun ? 'would create' : 'created'} ${tokens} with a new token (mode 600): give it to the panel`);
    } else result.done.push(`kept the existing tokens file ${tokens}`);
    const unit = path.join(dir, 'autossl-agent.service');
    // descriptors well above the connection cap, so sockets can never take the ones nginx -t and certbot need
    write(
      unit,
      unitFor('autossl-agent.service', config).replace(/^LimitNOFILE=\d+$/m, `LimitNOFILE=${agentNoFileLimit(engine.config.agent.limits.connections)}`),
    );
    result.done.push(`${options.dryRun ? 'would write' : 'wrote'} ${unit} (listening on ${engine.config.agent.listen})`);
    if (!systemd) result.todo.push(`systemd does not run this machine: start the agent with "autossl agent --config ${config}" under your supervisor`);
    else if (!options.dryRun) {
      const enabled = await systemctl(['daemon-reload']).then(() => systemctl(['enable', '--now', 'autossl-agent.service']));
      if (enabled.ok) result.done.push('enabled and started autossl-agent.service');
      else result.todo.push(`systemctl enable --now autossl-agent.service failed: ${enabled.out}`);
    }
  }
  return result;
}
