/** `autossl jobs` (batches and their domains) and `autossl recover` (what a killed run left behind). */
import { AutoSslError, ERROR_CODES } from '../errors.js';
import { engineFor, type Values } from './config.js';
import { fmtMs, out } from './output.js';

export async function cmdJobs(positionals: string[], values: Values): Promise<number> {
  const engine = await engineFor(values);
  const [id] = positionals;
  try {
    if (id) {
      const job = await engine.job(id);
      if (!job) throw new AutoSslError('JOB_NOT_FOUND', `There is no job ${JSON.stringify(id).slice(0, 80)}.`, { hint: 'autossl jobs lists the recent ones.' });
      if (values.json === true) out(JSON.stringify(job, null, 2));
      else {
        out(
          `job ${job.id} (${job.kind}, from ${job.source}): ${job.state}, started ${new Date(job.createdAt).toISOString()}${job.finishedAt ? `, ended ${new Date(job.finishedAt).toISOString()}` : ''}`,
        );
        // a fleet: the node that finished the batch of a node that died (src/fleet/handover.ts)
        const handedOver = Array.isArray(job.options.handedOver) ? (job.options.handedOver as Array<{ node?: unknown; from?: unknown; at?: unknown }>) : [];
        for (const h of handedOver)
          out(`  taken over by node ${String(h.node)} at ${new Date(Number(h.at)).toISOString()}: the process that ran it (${String(h.from)}) was gone`);
        for (const d of job.domains) {
          const took = d.stages.map((x) => `${x.stage} ${fmtMs(x.ms)}`).join(', ');
          out(`  ${d.domain.padEnd(32)} ${d.state.padEnd(10)} ${d.code ? `${d.code}: ${(d.message ?? '').slice(0, 160)}` : took}`);
        }
      }
      return job.state === 'failed' ? 1 : 0;
    }
    const jobs = await engine.jobs(Number(values.limit ?? 20) || 20);
    if (values.json === true) out(JSON.stringify({ jobs }, null, 2));
    else if (!jobs.length) out('no jobs');
    else
      for (const j of jobs)
        out(
          `${j.id}  ${new Date(j.createdAt).toISOString()}  ${j.state.padEnd(11)} ${j.domains.filter((d) => d.state === 'done').length}/${j.domains.length} done${j.domains.some((d) => d.state === 'failed') ? `, ${j.domains.filter((d) => d.state === 'failed').length} failed` : ''}  (${j.source})`,
        );
    return 0;
  } finally {
    await engine.close();
  }
}

export async function cmdRecover(values: Values): Promise<number> {
  // what plugins say while undoing (a record left alone because someone changed it) is part of the report
  // so is what recovery finished: a certificate adopted from a killed order, a killed job's domains installed
  const finished: string[] = [];
  const engine = await engineFor(values, (e) => {
    const recovered = e.stage === 'recover' && e.status === 'info' && e.domain === '*' && !/^(restored|undid) /.test(e.message ?? '');
    if (recovered) finished.push(e.message ?? '');
    if (values.json !== true && (e.stage === 'log' || e.status === 'warning' || recovered)) out(`${e.plugin ? `${e.plugin}: ` : ''}${e.message ?? ''}`);
  });
  const report = await engine.recover({ discard: values.discard as string | undefined });
  await engine.close();
  const j = report.journals;
  const problems = j.conflicts.length + j.damaged.length + report.undo.failed.length;
  if (values.json === true)
    out(
      JSON.stringify(
        {
          ok: problems === 0,
          restored: j.restored,
          conflicts: j.conflicts.map((c) => ({ code: 'JOURNAL_CONFLICT', ...c })),
          damaged: j.damaged.map((d) => ({ code: 'JOURNAL_DAMAGED', ...d })),
          undo: { ran: report.undo.ran, failed: report.undo.failed.map((f) => ({ ...f, error: f.error.toJSON() })) },
          finished,
          active: j.active + report.undo.active,
        },
        null,
        2,
      ),
    );
  else {
    if (j.restored.length) out(`restored: ${j.restored.join(', ')}`);
    for (const r of report.undo.ran) out(`undone: ${r.plugin} ${r.kind}`);
    for (const c of j.conflicts) out(`JOURNAL_CONFLICT ${c.file}: ${c.reason}\n  backup: ${c.backup}\n  when resolved: autossl recover --discard ${c.journal}`);
    for (const d of j.damaged) out(`JOURNAL_DAMAGED ${d.journal}: ${d.reason}\n  hint: ${ERROR_CODES.JOURNAL_DAMAGED}`);
    for (const f of report.undo.failed) out(`UNDO FAILED ${f.plugin} ${f.kind}: ${f.error.message}`);
    if (j.active + report.undo.active) out(`${j.active + report.undo.active} item(s) belong to runs still in progress; left to them`);
    if (!j.restored.length && !report.undo.ran.length && !problems && !finished.length) out('nothing to recover');
  }
  return problems ? 1 : 0;
}
