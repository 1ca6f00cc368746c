/**
 * autossl's hooks in certbot's renewal-hooks directories: `autossl install-hooks`, and the deploy hook an issue makes
 * sure of. The certbot issuer's side of renewal (Issuer.installHooks, Issuer.ensureRenewalHooks): `certbot renew`,
 * by its timer or by hand, runs them.
 */
import fs from 'node:fs';
import path from 'node:path';
import { firstInSmallFiles } from '../fsutil.js';
import { writeHookScript } from '../certbot/hooks.js';
import type { AutoSslConfig } from '../config/schema.js';
import { toAutoSslError } from '../errors.js';

const DEPLOY_HOOK_COMMENT =
  'Installed by "autossl install-hooks": after every certbot renewal, the renewed lineage goes through autossl\'s\npipeline (vhost re-pointed, nginx -t, reload, TLS check, plugins). certbot sets RENEWED_LINEAGE and RENEWED_DOMAINS.';

/** autossl's deploy-hook command in a script or a renewal config: the word as hookCommand writes it (shell-quoted) or bare. */
const DEPLOY_HOOK_WORD = /(?:^|[\s'"])deploy-hook(?=['"\s]|$)/m;

/** autossl's deploy hook among certbot's (renewal-hooks/deploy/), if one is there. */
export function installedDeployHook(configDir: string): string | null {
  // certbot runs only executable files there
  return firstInSmallFiles(path.join(configDir, 'renewal-hooks', 'deploy'), 64 * 1024, (file, text, st) =>
    st.mode & 0o111 && DEPLOY_HOOK_WORD.test(text) ? file : null,
  );
}

/** Whether a lineage's renewal config names autossl's deploy hook (certbot stores --deploy-hook as renew_hook). */
function lineageNamesDeployHook(configDir: string, lineage: string): boolean {
  try {
    const line = /^\s*renew_hook\s*=(.*)$/m.exec(fs.readFileSync(path.join(configDir, 'renewal', `${lineage}.conf`), 'utf8'));
    return line !== null && DEPLOY_HOOK_WORD.test(line[1]!);
  } catch {
    return false;
  }
}

/**
 * After a run that created lineages: makes sure certbot's renewals of them reach nginx (without the deploy hook,
 * `certbot renew` writes a new certificate nginx never loads, and nothing says so). Installs the deploy hook when
 * neither it nor the lineages' renewal configs have it; says what it did (null: it was in place).
 */
export function ensureDeployHook(core: { config: AutoSslConfig }, lineages: readonly string[]): { message: string; warning: boolean } | null {
  const { configDir } = core.config.certbot;
  if (!lineages.length || installedDeployHook(configDir) || lineages.every((l) => lineageNamesDeployHook(configDir, l))) return null;
  const file = path.join(configDir, 'renewal-hooks', 'deploy', 'autossl');
  const config = core.config.filepath;
  if (!config && !core.config.zeroConfig) {
    // an engine made from a config object: no command line could find that config again
    return {
      warning: true,
      message: `certbot renew would write renewed certificates of ${lineages.join(', ')} that nginx never loads: there is no deploy hook in ${path.dirname(file)}, and this config has no file for one to use ("autossl setup --config FILE" installs it)`,
    };
  }
  try {
    writeHookScript(file, ['deploy-hook'], config, DEPLOY_HOOK_COMMENT);
  } catch (error) {
    return {
      warning: true,
      message: `certbot renew would write renewed certificates of ${lineages.join(', ')} that nginx never loads: installing the deploy hook ${file} failed (${toAutoSslError(error).message}); run "autossl setup"`,
    };
  }
  return {
    warning: false,
    message: `installed certbot's deploy hook ${file}${config ? ` (with ${config})` : ' (no config file: it discovers this server as this run did)'}: every certbot renew, by its timer, cron or by hand, now installs the renewed certificate and reloads nginx ("autossl setup" adds the pre/post hooks and a timer)`,
  };
}

/**
 * Puts autossl's executables into certbot's renewal-hooks directories: every renewal, whoever starts it (certbot's
 * timer, autossl renew, certbot by hand), runs the deploy hook per renewed lineage and the pre/post hooks around
 * the run.
 */
export function installHooks(core: { config: AutoSslConfig }): string[] {
  const base = path.join(core.config.certbot.configDir, 'renewal-hooks');
  const config = core.config.filepath;
  return [
    writeHookScript(path.join(base, 'deploy', 'autossl'), ['deploy-hook'], config, DEPLOY_HOOK_COMMENT),
    writeHookScript(
      path.join(base, 'pre', 'autossl'),
      ['renew-hook', 'pre'],
      config,
      'Installed by "autossl install-hooks": runs the beforeRenew hook before certbot renews anything.',
    ),
    writeHookScript(
      path.join(base, 'post', 'autossl'),
      ['renew-hook', 'post'],
      config,
      'Installed by "autossl install-hooks": runs the afterRenew hook after certbot\'s renewal attempts, records\nfailed renewals and delivers notifications.',
    ),
  ];
}
