/**
 * Runs at once (pebble, certbot and nginx, all real on 127.0.0.1): several autossl processes editing one file never
 * take back each other's challenge locations (a failed validation counts against Let's Encrypt's 5 an hour), and
 * wait for each other's certbot instead of tripping over its lock.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AcmeRig } from '../../scripts/sandbox/rig.js';
import { readCertificate } from '../../src/issuer/certificate.js';
import { servedSerial } from '../../src/stages/verify-tls.js';
import { linesOutsideTargets } from '../helpers/confined.js';
import { parseJson } from '../helpers/json.js';
import { servedEventually } from '../helpers/served.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const NAMES = Array.from({ length: 8 }, (_, i) => `p${i + 1}.race.test`);

let rig: AcmeRig;
let config: string;
let file: string;

beforeAll(async () => {
  rig = await AcmeRig.start();
  // every block routes everything to an app: each needs its own challenge location
  const blocks = NAMES.map(
    (name) => `server {\n    listen 127.0.0.1:80;\n    server_name ${name};\n\n    location / {\n        proxy_pass http://127.0.0.1:3999;\n    }\n}\n`,
  );
  file = path.join(rig.info.sitesDir, 'race.conf');
  fs.writeFileSync(file, blocks.join('\n'));
  await rig.reloadNginx();
  config = path.join(rig.info.dir, 'autossl.config.json');
  fs.writeFileSync(config, JSON.stringify(rig.autosslConfig({ sites: NAMES.map((domain) => ({ domain })) }), null, 2));
});

afterAll(async () => {
  await rig?.stop();
});

describe('autossl processes at once', () => {
  it('8 parallel issue runs for 8 domains in one file: all served, no failed validation, every edit in its own block (issue 12, defect 4)', async () => {
    const before = fs.readFileSync(file, 'latin1');
    const runs = await Promise.all(NAMES.map((name) => execa('node', [CLI, 'issue', name, '--json', '--config', config], { reject: false })));
    for (const [i, run] of runs.entries()) {
      const result = (parseJson(run.stdout) as { results: Array<{ ok: boolean; error?: { code: string; message: string } }> }).results[0]!;
      expect(result.error, NAMES[i]).toBeUndefined();
      expect(run.exitCode, NAMES[i]).toBe(0);
    }
    const db = new Database(path.join(rig.info.dir, 'state', 'state.db'), { readonly: true });
    expect(db.prepare('SELECT count(*) AS n FROM validation_failures').get()).toEqual({ n: 0 });
    db.close();
    const after = fs.readFileSync(file, 'latin1');
    expect(linesOutsideTargets(before, after, NAMES)).toEqual([]);
    expect(after.match(/location \^~ \/\.well-known\/acme-challenge\//g)).toHaveLength(8);
    for (const name of NAMES) {
      const serial = readCertificate(path.join(rig.certbotDirs().configDir, 'live', name, 'cert.pem')).serial;
      expect(await servedEventually(name, serial)).toBe(serial);
    }
  });
});
