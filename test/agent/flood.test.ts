/**
 * Acceptance (issue 19): no unauthenticated client can exhaust the agent. bench/agent-flood.ts run with the issue's
 * numbers against `autossl agent` as its own process (descriptors limited to 1024, default agent.limits), on
 * loopback: 2,000 slow-body connections (headers of a 261 KB POST, 128 KB of it, then nothing; half unsigned,
 * half with a forged well-formed signature) from ten source addresses, then 20,000 connection attempts; a signed
 * /ssl/status every 100 ms from the panel's address all along. Needs dist (npx tsc -p tsconfig.json).
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
// the compiled bench: it starts its prober as a node process of its own file
const BENCH = path.resolve(import.meta.dirname, '../../dist/bench/agent-flood.js');

describe('agent under an unauthenticated flood', () => {
  it('2,000 slow bodies then 20,000 connection attempts: RSS < 150 MB, every signed /ssl/status answered 200 within 1 s, the agent still up', async () => {
    const { DEFAULT_FLOOD, runFlood } = (await import(BENCH)) as typeof import('../../bench/agent-flood.js');
    const r = await runFlood({ ...DEFAULT_FLOOD, cli: CLI });
    const summary = JSON.stringify({ ...r, signed: { ...r.signed, failures: r.signed.failures.slice(0, 10) } });
    expect(r.attemptsMade, summary).toBe(20_000);
    expect(r.peakRssMb, summary).toBeLessThan(150);
    expect(r.signed.count, summary).toBeGreaterThan(10);
    expect(r.signed.failures, summary).toEqual([]);
    expect(r.agentAlive, summary).toBe(true);
  }, 120_000);
});
