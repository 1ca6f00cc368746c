/**
 * `autossl check` on 50 domains whose every DNS probe times out (a resolver that swallows queries) finishes
 * in about the configured timeout, not 50 times it: probes run in parallel, each bounded.
 */
import dgram from 'node:dgram';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import fs from 'node:fs';
import { parseJson } from '../helpers/json.js';

let blackhole: dgram.Socket;
let port: number;
let t: NginxSandboxTree;
const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');

beforeAll(async () => {
  blackhole = dgram.createSocket('udp4');
  blackhole.on('message', () => undefined); // read and never answer
  await new Promise<void>((r) => blackhole.bind(0, '127.0.0.1', r));
  port = blackhole.address().port;
  const names = Array.from({ length: 50 }, (_, i) => `d${i}.slow.test`);
  t = await makeTree(names.map((n) => `server {\n    listen 127.0.0.1:80;\n    server_name ${n};\n    root {{DIR}}/www;\n}\n`).join('\n'));
});

afterAll(() => blackhole?.close());

describe('pre-flight timeouts', () => {
  it('50 domains whose probes all time out finish within about the configured timeout', async () => {
    const timeoutMs = 1000;
    const config = path.join(t.dir, 'autossl.config.json');
    fs.writeFileSync(
      config,
      JSON.stringify({
        nginx: { binary: BINARIES.nginx, config: t.main },
        serverAddresses: ['127.0.0.1'],
        stateDir: path.join(t.dir, 'state'),
        preflight: { resolvers: [`127.0.0.1:${port}`], timeoutMs },
      }),
    );
    const names = Array.from({ length: 50 }, (_, i) => `d${i}.slow.test`);
    const started = performance.now();
    const run = await execa('node', [CLI, 'check', ...names, '--json', '--config', config], { reject: false });
    const elapsed = performance.now() - started;
    expect(run.exitCode).toBe(1);
    const report = parseJson(run.stdout) as { results: Array<{ domain: string; findings: Array<{ code?: string }> }> };
    expect(report.results).toHaveLength(50);
    for (const r of report.results) expect(r.findings.map((f) => f.code)).toContain('DNS_TIMEOUT');
    // one timeout, plus process start-up; 50 sequential timeouts would be 50 s
    expect(elapsed).toBeLessThan(timeoutMs * 2 + 1500);
  });
});
