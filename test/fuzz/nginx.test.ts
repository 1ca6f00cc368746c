/**
 * The editor fuzz against the real nginx binary (scripts/fuzz/nginx.ts): generated sites nginx accepts, edited by
 * the planners `autossl issue` uses and by generated splices; nginx -t must accept every edit that was not refused
 * with a code, and a second plan must change nothing. A private prefix per run; a fixed seed keeps CI
 * deterministic (AUTOSSL_FUZZ_SEED / AUTOSSL_FUZZ_NGINX_RUNS explore further).
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { NginxSandbox, nginxCase, runNginxCase } from '../../scripts/fuzz/nginx.js';

const SEED = Number(process.env.AUTOSSL_FUZZ_SEED ?? 20_261_128);
const RUNS = Number(process.env.AUTOSSL_FUZZ_NGINX_RUNS ?? 150);

describe('editor fuzz: nginx -t accepts every edit it did not refuse', () => {
  it(`${RUNS} generated sites, planned and spliced edits`, async () => {
    const box = await NginxSandbox.create();
    const outcomes: Record<string, number> = {};
    const bump = (k: string): void => void (outcomes[k] = (outcomes[k] ?? 0) + 1);
    try {
      await fc.assert(
        fc.asyncProperty(nginxCase, async (c) => {
          const r = await runNginxCase(box, c);
          bump(r.outcome);
          if (r.plan) bump(`plan:${r.plan}`);
          if (r.splices) bump(`splices:${r.splices}`);
        }),
        { numRuns: RUNS, seed: SEED },
      );
    } finally {
      box.remove();
    }
    // the generator writes what nginx accepts, and the planners do edit (not only refuse)
    expect(outcomes.checked ?? 0).toBeGreaterThan(RUNS * 0.95);
    expect(outcomes['plan:edited'] ?? 0).toBeGreaterThan(RUNS / 3);
    expect(outcomes['splices:accepted'] ?? 0).toBeGreaterThan(RUNS / 2);
  }, 120_000);
});
