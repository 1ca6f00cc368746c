/**
 * The small executables certbot runs: the deploy, pre and post renewal hooks (in `<configDir>/renewal-hooks/`)
 * and the DNS-01 manual auth/cleanup hooks (under autossl's state directory, named in each DNS-01 lineage's
 * renewal config). Each is `exec node <autossl cli> <command> --config <file>`: built only from autossl's own
 * paths, never from a domain; certbot hands the domain over in its environment, where autossl validates it.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { AutoSslError } from '../errors.js';
import { parentPid } from '../lock.js';

/**
 * Set on every `certbot certonly` autossl runs (to autossl's pid). certbot 4 and 5 run the renewal-hooks
 * directories' pre/post hooks during certonly too, and certbot 5 the deploy hook: autossl's own hooks see this and
 * do nothing, since the issue run installs the certificate itself (a second install and reload, a "renewed"
 * notification for an issue, a renewal failure recorded for a failed issue, otherwise).
 */
export const CERTONLY_PARENT_ENV = 'AUTOSSL_CERTONLY_PARENT';

/**
 * Whether this hook runs inside a certbot that autossl itself started for an issue: the variable names an ancestor
 * of this process (certbot → shell → hook), so a value left in some other environment does not silence the hooks.
 */
export function insideAutosslCertonly(env: NodeJS.ProcessEnv): boolean {
  const parent = Number(env[CERTONLY_PARENT_ENV]);
  if (!Number.isInteger(parent) || parent <= 1) return false;
  for (let pid = process.ppid, hops = 0; pid > 1 && hops < 8; pid = parentPid(pid), hops++) if (pid === parent) return true;
  return false;
}

export const shellQuote = (s: string): string => `'${s.replace(/'/g, `'\\''`)}'`;

/** The autossl CLI this code belongs to (dist/src/cli.js; from the sources under test, the built one beside them). */
export function cliEntry(): string {
  const here = fileURLToPath(new URL('../cli.js', import.meta.url));
  if (fs.existsSync(here)) return here;
  for (let dir = path.dirname(here); path.dirname(dir) !== dir; dir = path.dirname(dir)) {
    const built = path.join(dir, 'dist', 'src', 'cli.js');
    if (fs.existsSync(path.join(dir, 'package.json')) && fs.existsSync(built)) return built;
  }
  throw new AutoSslError('INTERNAL', `Cannot find autossl's command line (looked for ${here}); run npm run build.`);
}

/** The command line of a hook, e.g. `exec '/usr/bin/node' '/opt/autossl/dist/src/cli.js' deploy-hook --config '/etc/autossl/autossl.config.yaml'`. */
export function hookCommand(args: readonly string[], configFile: string | undefined, entry = cliEntry()): string {
  const parts = [process.execPath, entry, ...args, ...(configFile ? ['--config', path.resolve(configFile)] : [])];
  return parts.map(shellQuote).join(' ');
}

/** Writes an executable hook script atomically (mode 0755); `prelude` (sh lines) runs before the exec. */
export function writeHookScript(file: string, args: readonly string[], configFile: string | undefined, comment: string, entry?: string, prelude = ''): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  const script = `#!/bin/sh\n# ${comment.replace(/\n/g, '\n# ')}\n${prelude}exec ${hookCommand(args, configFile, entry)}\n`;
  const temp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(temp, script, { mode: 0o755 });
  fs.renameSync(temp, file);
  return file;
}
