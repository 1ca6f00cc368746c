import { execFileSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Store } from '../../src/store/store.js';
import { PgStore } from '../../src/store/postgres/index.js';
import { startPostgres, type PgCluster } from '../helpers/postgres.js';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { openKey, sealKey } from '../../src/fleet/keys.js';
import { fleetStatus } from '../../src/fleet/status.js';
import { AutoSslError } from '../../src/errors.js';

const settings = { node: 'n1', liveMs: 15_000, ackTimeoutMs: 1000, pollMs: 50 };
const row = (serial: string, notAfter: number, at = 1) => ({
  id: 'a.test',
  names: ['a.test'],
  serial,
  notAfter,
  cert: 'C',
  chain: 'CH',
  fullchain: 'FC',
  key: 'K',
  node: 'n1',
  at,
});

let cluster: PgCluster;
beforeAll(async () => {
  cluster = await startPostgres();
}, 120_000);
afterAll(async () => {
  await cluster?.stop();
});

/** Two handles on one store (two nodes, or two processes of one machine), and how to let it go. */
const STORES: Array<[string, () => Promise<{ store: Store; other: Store; done(): void }>]> = [
  [
    'SQLite',
    async () => {
      const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-'));
      return { store: new SqliteStore(dir), other: new SqliteStore(dir), done: () => fs.rmSync(dir, { recursive: true, force: true }) };
    },
  ],
  [
    'PostgreSQL',
    async () => {
      const url = await cluster.createDatabase(`fleet_${process.pid}`);
      return { store: new PgStore(url), other: new PgStore(url), done: () => undefined };
    },
  ],
];

describe.each(STORES)('fleet records (%s)', (_kind, open) => {
  it("keeps tokens with their acks, the newer of two lineages, and each node's served serial; status says mismatch", async () => {
    const { store: s0, other: o0, done } = await open();
    const store = s0 as Store & { fleet: NonNullable<Store['fleet']> };
    const other = o0 as Store & { fleet: NonNullable<Store['fleet']> };
    try {
      await store.fleet.publishChallenge({ token: 'tok', content: 'tok.abc', node: 'n1', at: 1 });
      await other.fleet.ack('tok', 'n2');
      await other.fleet.ack('nope', 'n2'); // a withdrawn token is never acknowledged
      expect(await store.fleet.acks('tok')).toEqual(['n2']);
      expect(await store.fleet.acks('nope')).toEqual([]);
      await store.fleet.withdrawChallenge('tok');
      expect(await store.fleet.challenges()).toEqual([]);
      expect(await store.fleet.acks('tok')).toEqual([]);

      await store.fleet.putLineage(row('0A', 2000));
      await other.fleet.putLineage(row('0B', 1000, 5)); // older certificate: not kept
      expect(await store.fleet.lineageSerials()).toEqual([{ id: 'a.test', serial: '0A' }]);
      await other.fleet.putLineage(row('0C', 3000, 6));
      expect((await store.fleet.lineage('a.test'))!.serial).toBe('0C');

      const now = Date.now();
      await store.fleet.heartbeat('n1', now);
      await store.fleet.heartbeat('n2', now);
      await store.fleet.heartbeat('n3', now - 60_000);
      await store.fleet.reportServed([
        { node: 'n1', lineage: 'a.test', serial: '0C', error: null, at: now },
        { node: 'n2', lineage: 'a.test', serial: '0A', error: null, at: now },
      ]);
      const s = await fleetStatus(store.fleet, settings, now);
      expect(s.certificates[0]!.nodes.map((n) => [n.node, n.state])).toEqual([
        ['n1', 'ok'],
        ['n2', 'mismatch'],
        ['n3', 'down'],
      ]);
      expect(s.mismatches).toBe(1);
    } finally {
      await store.close();
      await other.close();
      done();
    }
  }, 60_000);
});

describe('private keys at rest', () => {
  it('encrypts private keys with the key file, and refuses another key file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-key-'));
    const keyFile = path.join(dir, 'k');
    fs.writeFileSync(keyFile, Buffer.alloc(32, 7), { mode: 0o600 });
    const sealed = sealKey('-----BEGIN PRIVATE KEY-----\nxyz\n', keyFile);
    expect(sealed.startsWith('enc:v1:')).toBe(true);
    expect(sealed).not.toContain('PRIVATE KEY');
    expect(openKey(sealed, keyFile)).toBe('-----BEGIN PRIVATE KEY-----\nxyz\n');
    fs.writeFileSync(keyFile, Buffer.alloc(32, 8));
    expect(() => openKey(sealed, keyFile)).toThrow(AutoSslError);
    expect(() => openKey(sealed, undefined)).toThrow(/no fleet.keyFile/);
    expect(sealKey('PEM', undefined)).toBe('PEM');
    fs.rmSync(dir, { recursive: true, force: true });
  });

  it('refuses a key file that is not one: readable by others, a FIFO, /dev/zero, a directory (CONFIG_INVALID at once, never a hang)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-key-'));
    try {
      const open = path.join(dir, 'open');
      fs.writeFileSync(open, Buffer.alloc(32, 7), { mode: 0o644 });
      fs.chmodSync(open, 0o644);
      expect(() => sealKey('PEM', open)).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/can be read by others \(mode 644\)/), hint: `chmod 600 ${open}` }),
      );
      const fifo = path.join(dir, 'fifo');
      execFileSync('mkfifo', [fifo]);
      expect(() => sealKey('PEM', fifo)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/is a FIFO/) }));
      expect(() => sealKey('PEM', '/dev/zero')).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/is a character device/) }),
      );
      expect(() => sealKey('PEM', dir)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/is a directory/) }));
      expect(() => sealKey('PEM', path.join(dir, 'missing'))).toThrow(
        expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringMatching(/cannot be read: ENOENT/) }),
      );
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});
