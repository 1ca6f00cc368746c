/**
 * The back-off's rules without a CA: the delay (hours, then days, capped), the CA's paused refusal as Let's
 * Encrypt words it (Boulder's wfe: "Your account is temporarily prevented from requesting certificates for %s and
 * possibly others. Please visit: <portal>/sfe/v1/unpause?jwt=..."), and what certbot's renewals report.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { AutoSslConfig } from '../../src/config/schema.js';
import { activeBackoff, backoffDelayMs, parsePaused, recordFailure, recordRenewalBackoff, recordSuccess } from '../../src/renewal/backoff.js';
import { markBackingOff } from '../../src/renewal/backoff-status.js';
import { rateLimitOf } from '../../src/certbot/certbot.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';

const HOUR = 3_600_000;
const URL = 'https://portal.letsencrypt.org/sfe/v1/unpause?jwt=eyJhbGciOiJIUzI1NiJ9.eyJhcGlWZXJzaW9uIjoidjEifQ.AbC-dEf_123';
/** As certbot 2.1 prints Boulder's answer to a new order for a paused name (problem type rateLimited, HTTP 429). */
const PAUSED_OUTPUT = `Requesting a certificate for shop.example.com and www.shop.example.com
An unexpected error occurred:
urn:ietf:params:acme:error:rateLimited :: There were too many requests of a given type :: Your account is temporarily prevented from requesting certificates for shop.example.com, www.shop.example.com and possibly others. Please visit: ${URL}
Ask for help or search for solutions at https://community.letsencrypt.org. See the logfile /var/log/letsencrypt/letsencrypt.log or re-run Certbot with -v for more details.`;

let dir: string;
let store: SqliteStore;
const config = { certbot: { server: 'https://acme.test/dir' }, preflight: { backoffAfter: 3, backoffMaxHours: 168 } } as unknown as AutoSslConfig;

beforeAll(() => {
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-backoff-'));
  store = new SqliteStore(dir);
});

afterAll(async () => {
  await store.close();
  fs.rmSync(dir, { recursive: true, force: true });
});

describe('the back-off delay', () => {
  it('is nothing below the threshold, then 1 hour doubling per failure (hours, then days), at most the cap', () => {
    const o = { after: 3, maxHours: 168 };
    expect([1, 2].map((f) => backoffDelayMs(f, o))).toEqual([0, 0]);
    expect([3, 4, 5, 6, 7, 8, 9, 10].map((f) => backoffDelayMs(f, o) / HOUR)).toEqual([1, 2, 4, 8, 16, 32, 64, 128]);
    expect(backoffDelayMs(11, o) / HOUR).toBe(168);
    expect(backoffDelayMs(5000, o) / HOUR).toBe(168); // no overflow
    // a week at most: 10 failures in the first week, then one a week; Let's Encrypt pauses after over a thousand
  });
});

describe("the CA's paused refusal", () => {
  it("reads Let's Encrypt's wording: the names and the unpause URL", () => {
    expect(parsePaused(PAUSED_OUTPUT)).toEqual({ names: ['shop.example.com', 'www.shop.example.com'], url: URL });
    expect(
      parsePaused(`Detail: Your account is temporarily prevented from requesting certificates for a.example and possibly others. Please visit: ${URL}.`),
    ).toEqual({ names: ['a.example'], url: URL });
    // the per-hour limit and other rate limits are not a pause
    expect(
      parsePaused(
        'urn:ietf:params:acme:error:rateLimited :: too many failed authorizations (5) for "a.example" in the last 1h0m0s, retry after 2026-12-03 15:00:00 UTC',
      ),
    ).toBeNull();
    expect(
      parsePaused('Your account is temporarily prevented from requesting certificates for a.example and possibly others. Please visit: http://evil.example/'),
    ).toBeNull(); // https only
  });

  it('is still a rate-limit answer to the old parser, which is why certbot runs check for a pause first', () => {
    expect(rateLimitOf({ stdout: '', stderr: PAUSED_OUTPUT, problems: [] })).not.toBeNull();
  });
});

describe('the back-off record', () => {
  it('counts failures per name, starts at the threshold, a success clears it; a pause keeps the URL for a day', async () => {
    const now = Date.parse('2026-12-03T12:00:00Z');
    for (let i = 1; i <= 2; i++) expect((await recordFailure(config, store, 'a.example', 'connection: refused', { now })).backingOff).toBe(false);
    expect(await activeBackoff(config, store, 'a.example', now)).toBeNull();
    const third = await recordFailure(config, store, 'a.example', 'connection: refused', { now });
    expect(third).toMatchObject({ backingOff: true, record: { failures: 3, until: now + HOUR } });
    expect(await activeBackoff(config, store, 'a.example', now + HOUR - 1)).not.toBeNull();
    expect(await activeBackoff(config, store, 'a.example', now + HOUR)).toBeNull();
    await recordSuccess(config, store, ['a.example']);
    expect(await store.backoff.get('https://acme.test/dir', 'a.example')).toBeNull();

    const paused = await recordFailure(config, store, 'p.example', 'paused', { now, unpauseUrl: URL });
    expect(paused).toMatchObject({ backingOff: true, record: { unpauseUrl: URL, until: now + 24 * HOUR } });
  });

  it("counts what certbot's renewals report: failed authorizations per named name, a pause with its URL, a renewal clears", async () => {
    const outcomes = [
      {
        lineage: 'r.example',
        names: ['r.example', 'www.r.example'],
        outcome: 'failed',
        problems: [{ domain: 'www.r.example', type: 'connection', detail: '203.0.113.9: Connection refused' }],
        message: 'www.r.example: connection: 203.0.113.9: Connection refused',
      },
      { lineage: 'shop.example.com', names: ['shop.example.com', 'www.shop.example.com'], outcome: 'failed', problems: [], message: PAUSED_OUTPUT },
      {
        lineage: 'n.example',
        names: ['n.example'],
        outcome: 'failed',
        problems: [{ type: 'serverInternal', detail: 'the CA had a bad day' }],
        message: 'serverInternal',
      },
    ];
    for (let i = 0; i < 3; i++) await recordRenewalBackoff(config, store, outcomes);
    const account = 'https://acme.test/dir';
    expect(await store.backoff.get(account, 'r.example')).toBeNull(); // not the name the CA failed
    expect(await store.backoff.get(account, 'www.r.example')).toMatchObject({ failures: 3 });
    expect(await store.backoff.get(account, 'n.example')).toBeNull(); // a CA's own error is no failed authorization
    expect(await store.backoff.get(account, 'www.shop.example.com')).toMatchObject({ unpauseUrl: URL });
    const queued = (await store.outbox.list())
      .filter((o) => o.kind === 'backing-off')
      .map((o) => JSON.parse(o.payload) as { names: string[]; error: { code: string; message: string } });
    expect(queued.some((n) => n.names[0] === 'www.r.example' && n.error.code === 'BACKING_OFF')).toBe(true);
    expect(queued.some((n) => n.names[0] === 'shop.example.com' && n.error.code === 'ACME_PAUSED' && n.error.message.includes(URL))).toBe(true);

    // status: the lineage's row is backing-off with the URL; a name with no certificate gets a row of its own
    const rows = await markBackingOff(config, store, [
      {
        lineage: 'shop.example.com',
        domain: 'shop.example.com',
        names: ['shop.example.com', 'www.shop.example.com'],
        state: 'ok',
        notAfter: '2027-01-01T00:00:00.000Z',
        daysLeft: 29,
        renewFrom: null,
        lastError: null,
        consecutiveFailures: 0,
        vhosts: [],
        serial: 'AA',
      },
    ]);
    expect(rows.find((r) => r.lineage === 'shop.example.com')).toMatchObject({ state: 'backing-off', lastError: { code: 'ACME_PAUSED' } });
    expect(rows.find((r) => r.lineage === 'shop.example.com')!.lastError!.message).toContain(URL);
    expect(rows.find((r) => r.domain === 'www.r.example')).toMatchObject({ lineage: '', state: 'backing-off', lastError: { code: 'BACKING_OFF' } });

    await recordRenewalBackoff(config, store, [{ lineage: 'r.example', names: ['r.example', 'www.r.example'], outcome: 'renewed', problems: [] }]);
    expect(await store.backoff.get(account, 'www.r.example')).toBeNull();
  });
});
