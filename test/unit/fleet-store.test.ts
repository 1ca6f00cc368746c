import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { SqliteStore } from '../../src/store/sqlite/index.js';
import { openKey, sealKey } from '../../src/fleet/keys.js';
import { fleetStatus } from '../../src/fleet/status.js';
import { AutoSslError } from '../../src/errors.js';

const settings = { node: 'n1', liveMs: 15_000, ackTimeoutMs: 1000, pollMs: 50 };
const row = (serial: string, notAfter: number, at = 1) => ({ id: 'a.test', names: ['a.test'], serial, notAfter, cert: 'C', chain: 'CH', fullchain: 'FC', key: 'K', node: 'n1', at });

describe('fleet records (SQLite)', () => {
  it('keeps tokens with their acks, the newer of two lineages, and each node\'s served serial; status says mismatch', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-'));
    const store = new SqliteStore(dir);
    const other = new SqliteStore(dir); // another process of the same machine
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
      await store.fleet.reportServed([{ node: 'n1', lineage: 'a.test', serial: '0C', error: null, at: now }, { node: 'n2', lineage: 'a.test', serial: '0A', error: null, at: now }]);
      const s = await fleetStatus(store.fleet, settings, now);
      expect(s.certificates[0]!.nodes.map((n) => [n.node, n.state])).toEqual([['n1', 'ok'], ['n2', 'mismatch'], ['n3', 'down']]);
      expect(s.mismatches).toBe(1);
    } finally {
      await store.close();
      await other.close();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('encrypts private keys with the key file, and refuses another key file', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-fleet-key-'));
    const keyFile = path.join(dir, 'k');
    fs.writeFileSync(keyFile, Buffer.alloc(32, 7));
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
});
