/**
 * The port-80 self-check against a real nginx on 127.0.0.1:80/443: a token served; a 404 because the app
 * routes the path; a refused connection; a redirect to https that serves the token; a redirect to a
 * non-standard port (which Let's Encrypt would not follow).
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { probeChallenge } from '../../src/preflight/port80.js';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { BINARIES, stopNginx } from '../../scripts/sandbox/rig.js';
import { makeTree, testCertificate, type NginxSandboxTree } from '../helpers/nginx-fixture.js';

let t: NginxSandboxTree;
let args: string[];
const TOKEN = 'autossl-test-token-1234';
const BODY = 'the-key-authorization';

beforeAll(async () => {
  const { cert, key } = await testCertificate();
  t = await makeTree(`server {
    listen 127.0.0.1:80;
    server_name served.pf.test;
    root {{DIR}}/www;
}

server {
    listen 127.0.0.1:80;
    server_name app.pf.test;
    root {{DIR}}/www;
    location / {
        try_files /index.php =404;
    }
}

server {
    listen 127.0.0.1:80;
    server_name tls.pf.test;
    return 301 https://$host$request_uri;
}

server {
    listen 127.0.0.1:443 ssl;
    server_name tls.pf.test;
    ssl_certificate ${cert};
    ssl_certificate_key ${key};
    root {{DIR}}/www;
}

server {
    listen 127.0.0.1:80;
    server_name port.pf.test;
    return 301 http://$host:8080$request_uri;
}
`);
  const dir = path.join(t.dir, 'www', '.well-known', 'acme-challenge');
  fs.mkdirSync(dir, { recursive: true });
  fs.writeFileSync(path.join(dir, TOKEN), BODY);
  args = ['-p', t.dir, '-e', path.join(t.dir, 'error.log'), '-c', t.main];
  await execa(BINARIES.nginx, args);
});

afterAll(async () => {
  if (t) await stopNginx(path.join(t.dir, 'nginx.pid'));
});

describe('port-80 self-check (real nginx)', () => {
  it('a served token passes', async () => {
    expect(await probeChallenge('served.pf.test', '127.0.0.1', TOKEN, BODY, 2000)).toMatchObject({ ok: true });
  });

  it('a wrong body is CHALLENGE_NOT_SERVED', async () => {
    expect(await probeChallenge('served.pf.test', '127.0.0.1', TOKEN, 'something else', 2000)).toMatchObject({ ok: false, code: 'CHALLENGE_NOT_SERVED' });
  });

  it('a 404 because the app routes the path is CHALLENGE_NOT_SERVED, naming the block nginx picks', async () => {
    const r = await probeChallenge('app.pf.test', '127.0.0.1', TOKEN, BODY, 2000);
    expect(r).toMatchObject({ ok: false, code: 'CHALLENGE_NOT_SERVED' });
    expect(r.message).toContain('HTTP 404');
    // through `autossl check`: the finding says which vhost answered and why
    const engine = await createAutoSsl(
      validateConfig({
        nginx: { binary: BINARIES.nginx, config: t.main },
        serverAddresses: ['127.0.0.1'],
        stateDir: path.join(t.dir, 'state'),
        sites: [{ domain: 'app.pf.test', documentRoot: path.join(t.dir, 'www') }],
      }),
    );
    const ctxFindings = (await engine.check(['app.pf.test'], { skipChecks: ['dns', 'caa'] }))[0]!.findings;
    const finding = ctxFindings.find((f) => f.code === 'CHALLENGE_NOT_SERVED')!;
    expect(finding.message).toContain(`${t.site}:7`); // the app.pf.test block
    expect(finding.message).toContain('try_files /index.php =404');
    expect(fs.readdirSync(path.join(t.dir, 'www', '.well-known', 'acme-challenge'))).toEqual([TOKEN]); // its own token was deleted
  });

  it('a refused connection is PORT80_UNREACHABLE with the address', async () => {
    const r = await probeChallenge('served.pf.test', '127.0.0.2', TOKEN, BODY, 2000);
    expect(r).toMatchObject({ ok: false, code: 'PORT80_UNREACHABLE' });
    expect(r.message).toContain('127.0.0.2');
    expect(r.message).toContain('connection refused');
  });

  it('a redirect to https that serves the token passes', async () => {
    expect(await probeChallenge('tls.pf.test', '127.0.0.1', TOKEN, BODY, 2000)).toMatchObject({
      ok: true,
      final: `https://tls.pf.test/.well-known/acme-challenge/${TOKEN}`,
    });
  });

  it('a redirect to a non-standard port is REDIRECT_INVALID', async () => {
    const r = await probeChallenge('port.pf.test', '127.0.0.1', TOKEN, BODY, 2000);
    expect(r).toMatchObject({ ok: false, code: 'REDIRECT_INVALID' });
    expect(r.message).toContain('port 8080');
  });
});
