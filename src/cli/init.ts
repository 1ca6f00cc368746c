/** `autossl init`: a config written from what this server has and the sites nginx serves. */
import { validateConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import type { Values } from './config.js';
import { out, write } from './output.js';

export async function cmdInit(positionals: string[], values: Values): Promise<number> {
  if (positionals.length)
    throw new AutoSslError('USAGE_INVALID', `autossl init takes no arguments, got ${JSON.stringify(positionals[0]).slice(0, 40)}.`, {
      hint: 'autossl init [--out FILE] [--dry-run] [--force]',
    });
  const resolvers = (values.resolver as string[] | undefined) ?? [];
  const addresses = (values.address as string[] | undefined) ?? [];
  if (resolvers.length || addresses.length) validateConfig({ preflight: { resolvers }, serverAddresses: addresses }, '--resolver/--address'); // an IP each
  const { runInit } = await import('../setup/init.js');
  const result = await runInit({
    out: values.out as string | undefined,
    force: values.force === true,
    dryRun: values['dry-run'] === true,
    check: values['no-check'] !== true,
    resolvers,
    addresses,
  });
  if (values.json === true) {
    out(JSON.stringify({ file: result.file, sites: result.sites, notes: result.notes, discovery: result.discovery }, null, 2));
    return 0;
  }
  if (result.file === null) write(process.stdout, result.text);
  else {
    const served = result.sites.filter((s) => s.certificate).length;
    out(
      `wrote ${result.file}: ${result.sites.length} site${result.sites.length === 1 ? '' : 's'} (${served} served with a certificate now), nginx ${result.discovery.nginx.config}, certbot ${result.discovery.certbot.configDir}`,
    );
    for (const n of result.notes) out(`note  ${n}`);
    for (const s of result.sites.filter((x) => x.check && !x.check.ok)) out(`check ${s.domain}: ${s.check!.problems[0] ?? 'fails'}`);
    out('next: read it, then "autossl issue --all" (or name domains), and "autossl setup" for renewals');
  }
  return 0;
}
