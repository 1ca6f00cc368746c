/**
 * scripts/fuzz-editor: the editor fuzz at scale, beyond what CI runs (test/fuzz runs 1,000 + 150 with a fixed seed).
 *   npm run build && node dist/scripts/fuzz-editor.js [cases] [--seed N] [--nginx N]
 * `cases` syntax-level cases (default 5,000) and `--nginx` cases against the real nginx (default a tenth of them),
 * in batches of 500 with successive seeds, so one failure does not stop the search. Prints the case counts, the
 * outcomes, and every failure with the seed and path that replay it (fast-check shrinks each to a small input);
 * exits 1 when any invariant failed.
 */
import fc from 'fast-check';
import { NginxSandbox, nginxCase, runNginxCase } from './fuzz/nginx.js';
import { runSyntaxCase, syntaxCase } from './fuzz/syntax.js';

const argv = process.argv.slice(2);
const flag = (name: string): number | undefined => {
  const i = argv.indexOf(name);
  return i >= 0 ? Number(argv[i + 1]) : undefined;
};
const cases = Number(argv.find((a, i) => /^\d+$/.test(a) && !['--seed', '--nginx'].includes(argv[i - 1] ?? '')) ?? 5_000);
const nginxCases = flag('--nginx') ?? Math.max(20, Math.round(cases / 10));
const firstSeed = flag('--seed') ?? Date.now() % 1_000_000_007;
const BATCH = 500;

interface Tally {
  cases: number;
  outcomes: Record<string, number>;
  failures: string[];
}

async function run(kind: 'syntax' | 'nginx', total: number): Promise<Tally> {
  const tally: Tally = { cases: 0, outcomes: {}, failures: [] };
  const box = kind === 'nginx' ? await NginxSandbox.create() : null;
  try {
    for (let done = 0, batch = 0; done < total; batch++) {
      const numRuns = Math.min(BATCH, total - done);
      const seed = (firstSeed + batch) % 1_000_000_007;
      const outcomes: Record<string, number> = {};
      const bump = (k: string): void => void (outcomes[k] = (outcomes[k] ?? 0) + 1);
      const details =
        kind === 'syntax'
          ? fc.check(
              fc.property(syntaxCase, (c) => {
                const r = runSyntaxCase(c);
                bump(r.code ? `${r.outcome}:${r.code}` : r.outcome);
                if (r.overcautious) throw new Error(`a refused edit was right: ${r.overcautious}`);
              }),
              { numRuns, seed },
            )
          : await fc.check(
              fc.asyncProperty(nginxCase, async (c) => {
                const r = await runNginxCase(box!, c);
                bump(r.outcome);
                if (r.plan) bump(`plan:${r.plan}`);
                if (r.splices) bump(`splices:${r.splices}`);
              }),
              { numRuns, seed },
            );
      if (details.failed) {
        // outcomes of a failed batch include shrinking replays: count only its cases that ran before the failure
        tally.cases += details.numRuns;
        const message = String((details.errorInstance as Error | undefined)?.message ?? details.errorInstance).slice(0, 3_000);
        tally.failures.push(`${kind} seed ${seed} path ${details.counterexamplePath}\n${message}`);
      } else {
        tally.cases += numRuns;
        for (const [k, v] of Object.entries(outcomes)) tally.outcomes[k] = (tally.outcomes[k] ?? 0) + v;
      }
      done += numRuns;
      process.stderr.write(`${kind}: ${done}/${total}\r`);
    }
  } finally {
    box?.remove();
  }
  process.stderr.write('\n');
  return tally;
}

const started = performance.now();
const syntax = await run('syntax', cases);
const nginx = await run('nginx', nginxCases);
const failures = [...syntax.failures, ...nginx.failures];
console.log(`editor fuzz: first seed ${firstSeed}, ${((performance.now() - started) / 1000).toFixed(1)} s`);
console.log(`syntax cases: ${syntax.cases}  ${JSON.stringify(syntax.outcomes)}`);
console.log(`nginx cases:  ${nginx.cases}  ${JSON.stringify(nginx.outcomes)}`);
console.log(`cases: ${syntax.cases + nginx.cases}, failures: ${failures.length}`);
for (const f of failures) console.log(`\n--- failure ---\n${f}`);
process.exitCode = failures.length ? 1 : 0;
