/** The commands about one domain's vhost: `vhost show`, `uninstall`, `upload`. */
import { unifiedDiff } from '../diff.js';
import { normalizeDomain } from '../domain.js';
import { AutoSslError, errorKind } from '../errors.js';
import { engineFor, type Values } from './config.js';
import { err, exitFor, humanEvent, out, printDiff, printError, resultJson } from './output.js';

export async function cmdVhostShow(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const [sub, input, ...extra] = positionals;
  if (sub !== 'show' || !input || extra.length)
    throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl vhost show <domain> [--diff]', { hint: 'autossl vhost show example.com --diff' });
  const domain = normalizeDomain(input, { allowWildcard: true });
  const engine = await engineFor(values);
  const preview = await engine.preview(domain);
  await engine.close();
  const diffs = values.diff ? preview.files.map((f) => unifiedDiff(f.file, f.before, f.after)) : [];
  if (json)
    out(
      JSON.stringify(
        {
          domain,
          names: preview.names,
          ok: preview.ok,
          error: preview.error?.toJSON(),
          http: preview.blocks.http,
          https: preview.blocks.https,
          notes: preview.notes,
          diff: values.diff ? diffs : undefined,
        },
        null,
        2,
      ),
    );
  else {
    for (const [label, list] of [
      ['port 80', preview.blocks.http],
      ['TLS', preview.blocks.https],
    ] as const) {
      for (const entry of list)
        out(
          `${entry.name} (${label}): ${entry.file ? `${entry.file}:${entry.line}  server_name ${(entry.serverNames ?? []).join(' ')}  listen ${(entry.listens ?? []).join(', ')}` : 'no server block'}`,
        );
    }
    for (const note of preview.notes) out(`note: ${note}`);
    for (const d of diffs) printDiff(d);
    if (values.diff && preview.ok && diffs.length === 0) out('(the HTTPS edit would change nothing)');
    if (!preview.ok && preview.error) {
      err(`error ${preview.error.code}: ${preview.error.message}`);
      err(`  hint: ${preview.error.hint}`);
    }
  }
  return preview.ok ? 0 : preview.error && errorKind(preview.error.code) === 'input' ? 2 : 1;
}

export async function cmdUninstall(positionals: string[], values: Values): Promise<number> {
  const [input, ...extra] = positionals;
  if (!input || extra.length) throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl uninstall <domain>', { hint: 'autossl uninstall example.com' });
  const domain = normalizeDomain(input);
  const engine = await engineFor(values, values.json === true ? undefined : humanEvent);
  const result = await engine.uninstall(domain);
  await engine.close();
  if (values.json === true) out(JSON.stringify({ ...result, error: result.error?.toJSON(), files: result.files.map((f) => f.file) }, null, 2));
  else if (result.ok) {
    out(
      result.files.length
        ? `ok    ${domain}: HTTP only now (${result.files.map((f) => f.file).join(', ')} changed, nginx reloaded)`
        : `ok    ${domain}: no vhost change${result.deleted.length ? '' : ' and no certificate deleted'}`,
    );
    for (const d of result.deleted) out(`      deleted certificate ${d}`);
    for (const k of result.kept) out(`      kept certificate ${k.certificate}: ${k.reason}`);
    for (const n of result.notes) out(`note  ${n}`);
  } else printError(result.error!, false);
  return result.ok ? 0 : result.error && errorKind(result.error.code) === 'input' ? 2 : 1;
}

export async function cmdUpload(positionals: string[], values: Values): Promise<number> {
  const [input, ...extra] = positionals;
  if (!input || extra.length || typeof values.cert !== 'string' || typeof values.key !== 'string')
    throw new AutoSslError('DOMAIN_INVALID', 'Usage: autossl upload <domain> --cert FULLCHAIN.pem --key KEY.pem', {
      hint: 'autossl upload shop.example.com --cert shop.crt --key shop.key',
    });
  const domain = normalizeDomain(input);
  const { readRegularFile } = await import('../fsutil.js');
  const read = (file: string, what: string): string => readRegularFile(file, { maxBytes: 256 * 1024, code: 'UPLOAD_INVALID', what }).data.toString('utf8');
  const certificate = read(values.cert, 'certificate');
  const privateKey = read(values.key, 'private key');
  const engine = await engineFor(values, values.json === true ? undefined : humanEvent);
  const result = await engine.installCertificate(domain, { certificate, privateKey });
  await engine.close();
  if (values.json === true) out(JSON.stringify(resultJson(result, false), null, 2));
  else if (result.ok) {
    out(
      `ok    ${domain}: HTTPS with the uploaded certificate for ${result.certificate?.names.join(', ')} (until ${result.certificate?.notAfter.toISOString()}); autossl does not renew it`,
    );
    for (const n of result.notes) out(`note  ${n}`);
  } else printError(result.error!, false);
  return exitFor(result.ok ? [] : [result.error?.code]);
}
