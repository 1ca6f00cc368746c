/**
 * Property-based fuzz of the lexer and the splicer (the invariants are listed in scripts/fuzz/syntax.ts). A fixed
 * seed keeps CI deterministic; AUTOSSL_FUZZ_SEED and AUTOSSL_FUZZ_RUNS explore further, and
 * `node dist/scripts/fuzz-editor.js N` runs thousands with fresh seeds.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { runSyntaxCase, syntaxCase } from '../../scripts/fuzz/syntax.js';

const SEED = Number(process.env.AUTOSSL_FUZZ_SEED ?? 20_261_128);
const RUNS = Number(process.env.AUTOSSL_FUZZ_RUNS ?? 1000);

describe('editor fuzz: lexer and splicer', () => {
  it(`${RUNS} generated files and edit plans keep every invariant`, () => {
    const outcomes: Record<string, number> = {};
    fc.assert(
      fc.property(syntaxCase, (c) => {
        const r = runSyntaxCase(c);
        const key = r.code ? `${r.outcome}:${r.code}` : r.outcome;
        outcomes[key] = (outcomes[key] ?? 0) + 1;
        // a refusal whose plain result was exactly what the edits mean refused too much
        expect(r.overcautious).toBeUndefined();
      }),
      { numRuns: RUNS, seed: SEED },
    );
    // the generator must keep producing real edits, not only files the plan cannot touch
    expect(outcomes.edited ?? 0).toBeGreaterThan(RUNS / 3);
  });
});
