/** `autossl issue` and `autossl check` (the pre-flight of an issue alone). */
import { unifiedDiff } from '../diff.js';
import { caProfiles, profilesLine } from '../issuer/profile.js';
import { createAutoSsl } from '../engine.js';
import type { StageEvent } from '../pipeline/context.js';
import { config, domainsOf, skipChecks, type Values } from './config.js';
import { exitFor, fmtMs, out, printDiff, resultJson } from './output.js';
import { Progress } from './progress.js';

export async function cmdIssue(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const dryRun = values['dry-run'] === true;
  const skips = skipChecks(values);
  const cfg = await config(values);
  const domains = domainsOf(positionals, values, cfg, 'issue');
  // --json: one JSON event per line as it happens (NDJSON), then the summary as the last line
  const progress = json ? null : new Progress(domains.length, values.verbose === true);
  const onEvent = json
    ? (e: StageEvent) => out(JSON.stringify({ type: 'event', at: new Date().toISOString(), ...e, ms: e.ms === undefined ? undefined : Math.round(e.ms) }))
    : progress!.event;
  const engine = await createAutoSsl(cfg, { onEvent });
  if (!json)
    out(`autossl issue${dryRun ? ' (dry run: nothing is written, certbot is not run)' : ''}${domains.length > 1 ? `: ${domains.length} domains` : ''}`);
  const results = await engine.issue(domains, { dryRun, force: values.force === true, skipChecks: skips, source: 'cli', onResult: (r) => progress?.done(r) });
  await engine.close();
  progress?.stop();
  if (json) {
    out(JSON.stringify({ type: 'summary', ok: results.every((r) => r.ok), jobId: results[0]?.jobId, results: results.map((r) => resultJson(r, dryRun)) }));
  } else {
    for (const r of results) {
      if (dryRun) for (const f of r.files) printDiff(unifiedDiff(f.file, f.before, f.after));
      for (const note of r.notes) out(`note  ${r.domain}: ${note}`);
      if (r.ok) {
        const what = dryRun
          ? 'would be served over HTTPS'
          : r.reused
            ? `HTTPS with existing certificate ${r.lineage?.name}`
            : `HTTPS with new certificate ${r.lineage?.name}`;
        const n = r.files.length;
        out(`ok    ${r.domain}: ${what}${n ? ` (${n} file${n > 1 ? 's' : ''} ${dryRun ? 'to change' : 'changed'})` : ' (no vhost change)'} in ${fmtMs(r.ms)}`);
      } else {
        out(`FAIL  ${r.domain}: ${r.error?.code}: ${r.error?.message}`);
        out(`      hint: ${r.error?.hint}`);
        if (r.rolledBack.length) out(`      restored: ${r.rolledBack.join(', ')}`);
      }
    }
    const failed = results.filter((r) => !r.ok).length;
    if (results.length > 1)
      out(
        `${results.length - failed} of ${results.length} ok${failed ? `, ${failed} failed` : ''}${results[0]?.jobId ? ` (job ${results[0].jobId}: autossl jobs ${results[0].jobId})` : ''}`,
      );
  }
  return exitFor(results.filter((r) => !r.ok).map((r) => r.error?.code));
}

export async function cmdCheck(positionals: string[], values: Values): Promise<number> {
  const json = values.json === true;
  const skips = skipChecks(values);
  const cfg = await config(values);
  const domains = domainsOf(positionals, values, cfg, 'check');
  const engine = await createAutoSsl(cfg);
  // the CA's certificate profiles (its directory's meta.profiles), read beside the checks
  const profiles = caProfiles(cfg).then(
    (p) => ({ profiles: p }),
    (e: unknown) => ({ profiles: null, profilesError: e instanceof Error ? e.message : String(e) }),
  );
  const results = await engine.check(domains, { skipChecks: skips });
  await engine.close();
  const ca = await profiles;
  if (json) {
    out(JSON.stringify({ ok: results.every((r) => r.ok), results: results.map((r) => ({ ...r, ms: Math.round(r.ms) })), ...ca }, null, 2));
  } else {
    out(profilesLine(cfg, ca));
    for (const r of results) {
      out(`${r.ok ? 'ok  ' : 'FAIL'} ${r.domain}${r.names.length > 1 ? ` (${r.names.slice(1).join(', ')})` : ''}  ${fmtMs(r.ms)}`);
      for (const f of r.findings) {
        const mark = f.severity === 'error' ? 'x' : f.severity === 'warning' ? '!' : '+';
        out(`  [${mark}] ${f.check.padEnd(10)} ${f.code ? `${f.code}: ` : ''}${f.message}`);
        if (f.severity !== 'info' && f.hint) out(`      ${''.padEnd(10)} fix: ${f.hint}`);
      }
    }
  }
  // a domain fails on its first unresolved error finding, as issue would
  return exitFor(results.filter((r) => !r.ok).map((r) => r.findings.find((f) => f.severity === 'error' && !f.resolved)?.code));
}
