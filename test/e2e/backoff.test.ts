/**
 * Never a paused hostname, end to end (pebble, challtestsrv, a private nginx, the machine's certbot, the built CLI):
 * a name whose validations fail (the CA reaches nothing at the address its DNS gives: no vhost answers the token)
 * is backed off after `preflight.backoffAfter` failures in a row: no order reaches pebble and certbot does not run
 * until the back-off ends, `status` says `backing-off` with the last error, a notification is queued; the next
 * failure doubles the back-off, a success clears it. The CA's "paused" refusal (pebble has none: certbot is wrapped
 * to answer one name with Let's Encrypt's text) is ACME_PAUSED with the unpause URL, in the run and in `status`.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa, execaSync } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig, BINARIES } from '../../scripts/sandbox/rig.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { backoffAccount } from '../../src/renewal/backoff.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const HOUR = 3_600_000;
const FAIL = 'fail.backoff.test';
const PAUSED = 'paused.backoff.test';
const UNPAUSE =
  'https://portal.letsencrypt.org/sfe/v1/unpause?jwt=eyJhbGciOiJIUzI1NiJ9.eyJhY2N0IjoxMjM0NSwiaWRzIjpbInBhdXNlZC5iYWNrb2ZmLnRlc3QiXX0.c2lnbmF0dXJl';
const SITE = (name: string) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n    root {root};\n}\n`;

let rig: AcmeRig;
let configFile: string;
let certbotCalls: string;
const vhosts: Record<string, string> = {};

function cli(args: string[]) {
  return execa('node', [CLI, ...args, '--config', configFile], { reject: false });
}

function ordersInPebbleLog(): number {
  return (fs.readFileSync(path.join(rig.info.dir, 'pebble.log'), 'utf8').match(/Added order "/g) ?? []).length;
}

function certbotRuns(): number {
  return fs.existsSync(certbotCalls)
    ? fs
        .readFileSync(certbotCalls, 'utf8')
        .split('\n')
        .filter((l) => / certonly /.test(` ${l} `)).length
    : 0;
}

async function withStore<T>(fn: (s: SqliteStore) => Promise<T>): Promise<T> {
  const store = new SqliteStore(path.join(rig.info.dir, 'state'));
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

/** Ends the back-off of a name now (as time passing would). */
async function endBackoff(name: string, account: string): Promise<void> {
  await withStore(async (s) => {
    const r = await s.backoff.get(account, name);
    if (r) await s.backoff.set(account, name, { ...r, until: Date.now() - 1000 });
  });
}

beforeAll(async () => {
  rig = await AcmeRig.start();
  for (const name of [FAIL, PAUSED]) vhosts[name] = rig.addSite(name, SITE(name)).file;
  await rig.reloadNginx();
  // certbot, wrapped: every call logged; an order for PAUSED answered as Let's Encrypt answers a paused name
  certbotCalls = path.join(rig.info.dir, 'certbot-calls.log');
  const wrapper = path.join(rig.info.dir, 'certbot-wrapper');
  fs.writeFileSync(
    wrapper,
    `#!/bin/sh
echo "$*" >> '${certbotCalls}'
case " $* " in
  *" certonly "*"${PAUSED}"*)
    echo "An unexpected error occurred:" >&2
    echo "urn:ietf:params:acme:error:rateLimited :: There were too many requests of a given type :: Your account is temporarily prevented from requesting certificates for ${PAUSED} and possibly others. Please visit: ${UNPAUSE}" >&2
    exit 1 ;;
esac
exec ${BINARIES.certbot} "$@"
`,
    { mode: 0o755 },
  );
  configFile = path.join(rig.info.dir, 'autossl.config.json');
  const config = rig.autosslConfig({ sites: [{ domain: FAIL }, { domain: PAUSED }] }) as {
    certbot: Record<string, unknown>;
    preflight: Record<string, unknown>;
  };
  config.certbot.binary = wrapper;
  // the per-hour budget off (it would refuse first): the back-off alone is under test, from the 2nd failure on
  config.preflight = { ...config.preflight, maxFailedValidations: 100, backoffAfter: 2 };
  fs.writeFileSync(configFile, JSON.stringify(config, null, 2));
  // the CA resolves the name to an address where nothing answers on port 80
  await rig.dns('/add-a', { host: FAIL, addresses: ['127.0.0.9'] });
});

afterAll(async () => {
  await rig?.stop();
});

describe('back-off of a name whose authorizations fail (pebble, certbot, nginx)', () => {
  const account = () => backoffAccount({ certbot: { server: rig.info.acmeDirectory } } as never);
  // pre-flight would see the wrong address and the unanswered token: skipped, so the CA itself fails the validation
  const skips = ['--skip-check', 'dns', '--skip-check', 'port80'];

  it('after 2 failed authorizations no order is placed and certbot does not run until the back-off ends; status says backing-off; a notification is queued', async () => {
    for (let i = 1; i <= 2; i++) {
      const orders = ordersInPebbleLog();
      const run = await cli(['issue', FAIL, '--json', ...skips]);
      const report = parseJson(run.stdout) as { results: Array<{ error: { code: string } }> };
      expect(report.results[0]!.error.code, `attempt ${i}`).toBe('CERTBOT_FAILED');
      expect(ordersInPebbleLog()).toBe(orders + 1); // the CA was asked, and failed the validation
    }
    const before = await withStore((s) => s.backoff.get(account(), FAIL));
    expect(before).toMatchObject({ failures: 2, unpauseUrl: null });
    expect(before!.lastError).toMatch(/connection|127\.0\.0\.9/);
    expect(before!.until! - before!.lastAt).toBe(HOUR);

    const orders = ordersInPebbleLog();
    const calls = certbotRuns();
    const bytes = sha256(fs.readFileSync(vhosts[FAIL]!));
    const run = await cli(['issue', FAIL, '--json', ...skips]);
    const report = parseJson(run.stdout) as { results: Array<{ ok: boolean; error: { code: string; message: string } }> };
    expect(report.results[0]!.ok).toBe(false);
    expect(report.results[0]!.error.code).toBe('BACKING_OFF');
    expect(report.results[0]!.error.message).toContain('2 failed authorizations in a row');
    expect(report.results[0]!.error.message).toContain(new Date(before!.until!).toISOString());
    expect(run.exitCode).toBe(1);
    expect(ordersInPebbleLog()).toBe(orders); // no order reached the CA
    expect(certbotRuns()).toBe(calls); // certbot did not even run
    expect(sha256(fs.readFileSync(vhosts[FAIL]!))).toBe(bytes);

    const status = await cli(['status', '--json']);
    const rows = (parseJson(status.stdout) as { certificates: Array<{ domain: string; state: string; lastError: { code: string; message: string } | null }> })
      .certificates;
    const row = rows.find((r) => r.domain === FAIL);
    expect(row).toMatchObject({ state: 'backing-off', lastError: { code: 'BACKING_OFF' } });
    expect(row!.lastError!.message).toMatch(/Last error: .*(connection|127\.0\.0\.9)/);
    expect(status.exitCode).toBe(1); // needs attention
    const text = await cli(['status']);
    expect(text.stdout).toMatch(new RegExp(`${FAIL.replaceAll('.', '\\.')}.*backing-off`));

    const queued = await withStore((s) => s.outbox.list());
    const n = queued.filter((o) => o.kind === 'backing-off');
    expect(n).toHaveLength(1);
    expect(JSON.parse(n[0]!.payload)).toMatchObject({ kind: 'backing-off', names: [FAIL], error: { code: 'BACKING_OFF' } });
  });

  it('when the back-off ends one order goes out; its failure doubles the back-off; a success clears it', async () => {
    await endBackoff(FAIL, account());
    let orders = ordersInPebbleLog();
    const again = parseJson((await cli(['issue', FAIL, '--json', ...skips])).stdout) as { results: Array<{ error: { code: string } }> };
    expect(again.results[0]!.error.code).toBe('CERTBOT_FAILED');
    expect(ordersInPebbleLog()).toBe(orders + 1);
    const third = await withStore((s) => s.backoff.get(account(), FAIL));
    expect(third).toMatchObject({ failures: 3 });
    expect(third!.until! - third!.lastAt).toBe(2 * HOUR);
    expect((await withStore((s) => s.outbox.list())).filter((o) => o.kind === 'backing-off')).toHaveLength(2);

    // fixed: the name points here again; once the back-off is over the order succeeds and the count starts anew
    await rig.dns('/clear-a', { host: FAIL });
    await endBackoff(FAIL, account());
    orders = ordersInPebbleLog();
    const ok = await cli(['issue', FAIL, '--json']);
    expect((parseJson(ok.stdout) as { results: Array<{ ok: boolean }> }).results[0]!.ok, ok.stdout).toBe(true);
    expect(ordersInPebbleLog()).toBe(orders + 1);
    expect(await withStore((s) => s.backoff.get(account(), FAIL))).toBeNull();
    const rows = (parseJson((await cli(['status', '--json'])).stdout) as { certificates: Array<{ domain: string; state: string }> }).certificates;
    expect(rows.find((r) => r.domain === FAIL)?.state).toBe('ok');
  });

  it("certbot's own renewal (its timer) of a backing-off lineage: kept away by autorenew = False until the back-off ends, then let in again", async () => {
    // the lineage the test above obtained; certbot's timer runs certbot renew with autossl's hooks installed
    expect((await cli(['install-hooks'])).exitCode).toBe(0);
    const conf = path.join(rig.certbotDirs().configDir, 'renewal', `${FAIL}.conf`);
    // due for certbot now (an admin's key, as a short lifetime would make it)
    fs.writeFileSync(conf, `renew_before_expiry = 36500 days\n${fs.readFileSync(conf, 'utf8')}`);
    const original = fs.readFileSync(conf, 'utf8');
    const serial = (): string =>
      execaSync('openssl', ['x509', '-noout', '-serial', '-in', path.join(rig.certbotDirs().configDir, 'live', FAIL, 'cert.pem')]).stdout.trim();
    const first = serial();
    await rig.dns('/add-a', { host: FAIL, addresses: ['127.0.0.9'] });
    for (let i = 1; i <= 2; i++) {
      const orders = ordersInPebbleLog();
      const run = await rig.certbot(['renew']);
      expect(run.exitCode, `certbot renew ${i}: ${run.stderr}`).not.toBe(0);
      expect(ordersInPebbleLog()).toBe(orders + 1);
    }
    // the post hook counted both failed authorizations: backing off, and certbot told to leave the lineage alone
    const r = await withStore((s) => s.backoff.get(account(), FAIL));
    expect(r).toMatchObject({ failures: 2 });
    expect(r!.until).toBeGreaterThan(Date.now());
    const held = fs.readFileSync(conf, 'utf8');
    expect(held).toMatch(
      new RegExp(`\\[renewalparams\\]\\n# autossl: back-off until ${new Date(r!.until!).toISOString().replaceAll('.', '\\.')} .*\\nautorenew = False\\n`),
    );

    // the timer's next run: certbot skips it; no order reaches the CA
    let orders = ordersInPebbleLog();
    const skipped = await rig.certbot(['renew']);
    expect(skipped.exitCode, skipped.stderr).toBe(0);
    expect(`${skipped.stdout}${skipped.stderr}`).toMatch(/not (yet )?due for renewal/i);
    expect(ordersInPebbleLog()).toBe(orders);
    // nor does autossl's pass (certbot.service runs it first): the back-off is still on
    const pass = await cli(['renew', '--pass-only', '--json']);
    expect(pass.exitCode, pass.stderr).toBe(0);
    expect(fs.readFileSync(conf, 'utf8')).toBe(held);

    // the back-off over and the name fixed: the pass lets certbot in again, the file as it was, and certbot renews
    await endBackoff(FAIL, account());
    await rig.dns('/clear-a', { host: FAIL });
    const beforeRelease = fs.readFileSync(conf, 'utf8');
    expect((await cli(['renew', '--pass-only', '--json'])).exitCode).toBe(0);
    const released = fs.readFileSync(conf, 'utf8');
    // exactly autossl's two lines went; what certbot wrote meanwhile stays (certbot >= 4.1 keeps its ARI
    // Retry-After in an [acme_renewal_info] section of its own), and nothing else differs from before the hold
    expect(released).toBe(beforeRelease.replace(/^# autossl: back-off until [^\n]*\nautorenew = False\n/m, ''));
    expect(released.replace(/^\[acme_renewal_info\]\n(?:[^[\n][^\n]*\n)*/m, '')).toBe(original);
    orders = ordersInPebbleLog();
    const renewed = await rig.certbot(['renew']);
    expect(renewed.exitCode, renewed.stderr).toBe(0);
    expect(ordersInPebbleLog()).toBe(orders + 1);
    expect(serial()).not.toBe(first);
    expect(await withStore((s) => s.backoff.get(account(), FAIL))).toBeNull();
  });

  it("the CA's paused refusal is ACME_PAUSED with the unpause URL, in the run and in status; no order is tried before a day", async () => {
    const run = await cli(['issue', PAUSED, '--json']);
    const report = parseJson(run.stdout) as { results: Array<{ error: { code: string; message: string; details: { unpauseUrl: string } } }> };
    expect(report.results[0]!.error.code).toBe('ACME_PAUSED');
    expect(report.results[0]!.error.message).toContain(UNPAUSE);
    expect(report.results[0]!.error.details.unpauseUrl).toBe(UNPAUSE);
    // not the whole account's rate limit: another name may still be ordered
    expect(await withStore((s) => s.rateLimits.get(rig.info.acmeDirectory))).toBeNull();
    const r = await withStore((s) => s.backoff.get(account(), PAUSED));
    expect(r).toMatchObject({ unpauseUrl: UNPAUSE });
    expect(r!.until! - r!.lastAt).toBe(24 * HOUR);

    const calls = certbotRuns();
    const second = parseJson((await cli(['issue', PAUSED, '--json'])).stdout) as { results: Array<{ error: { code: string; message: string } }> };
    expect(second.results[0]!.error.code).toBe('ACME_PAUSED');
    expect(second.results[0]!.error.message).toContain(UNPAUSE);
    expect(certbotRuns()).toBe(calls);

    const rows = (
      parseJson((await cli(['status', '--json'])).stdout) as {
        certificates: Array<{ domain: string; state: string; lastError: { code: string; message: string } | null }>;
      }
    ).certificates;
    const row = rows.find((x) => x.domain === PAUSED);
    expect(row).toMatchObject({ state: 'backing-off', lastError: { code: 'ACME_PAUSED' } });
    expect(row!.lastError!.message).toContain(UNPAUSE);
  });
});
