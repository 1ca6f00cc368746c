/**
 * An ACME rate-limit answer stops new orders for the account until the time the CA gave: the domain fails with
 * RATE_LIMITED and that time, and the next run places no order (certbot is not run) before then.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { createAutoSsl } from '../../src/engine.js';
import { rateLimitOf } from '../../src/certbot/certbot.js';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { makeTree } from '../helpers/nginx-fixture.js';

describe('rate limits', () => {
  it('reads the time the CA gives (Let\'s Encrypt\'s "retry after", a Retry-After header), else an hour', () => {
    const now = Date.parse('2026-11-28T12:00:00Z');
    expect(
      rateLimitOf(
        {
          stdout: '',
          stderr: '',
          problems: [
            {
              type: 'rateLimited',
              detail: 'too many certificates (5) already issued for this exact set of domains in the last 168h0m0s, retry after 2026-11-30 09:15:00 UTC',
            },
          ],
        },
        now,
      )?.until,
    ).toBe(Date.parse('2026-11-30T09:15:00Z'));
    expect(rateLimitOf({ stdout: '', stderr: 'Error: too many new orders recently. Retry-After: 120', problems: [] }, now)?.until).toBe(now + 120_000);
    expect(rateLimitOf({ stdout: '', stderr: 'too many failed authorizations recently', problems: [] }, now)?.until).toBe(now + 3_600_000);
    expect(rateLimitOf({ stdout: '', stderr: 'Connection refused', problems: [{ type: 'connection', detail: 'refused' }] }, now)).toBeNull();
  });

  it('a rate-limited order fails RATE_LIMITED with the time; the next run does not run certbot before then', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name limited.example.test;\n    root /var/www/l;\n}\n');
    const calls = path.join(t.dir, 'certbot-calls');
    const fake = path.join(t.dir, 'certbot');
    // a certbot that answers like Let's Encrypt's rate limit (and counts its runs)
    fs.writeFileSync(
      fake,
      `#!/bin/sh\necho run >> ${calls}\ncase "$1" in register) exit 0;; esac\necho "An unexpected error occurred:" >&2\necho "urn:ietf:params:acme:error:rateLimited :: too many certificates (5) already issued for this exact set of domains in the last 168h0m0s, retry after 2099-01-01 00:00:00 UTC" >&2\nexit 1\n`,
      { mode: 0o755 },
    );
    const le = path.join(t.dir, 'le');
    fs.mkdirSync(path.join(le, 'accounts', 'acme-v02.api.letsencrypt.org', 'directory', 'abc'), { recursive: true });
    fs.writeFileSync(path.join(le, 'accounts', 'acme-v02.api.letsencrypt.org', 'directory', 'abc', 'private_key.json'), '{}');
    const config = validateConfig({
      nginx: { binary: BINARIES.nginx, config: t.main, reloadCommand: ['/bin/true'] },
      certbot: { binary: fake, configDir: le, workDir: path.join(t.dir, 'work'), logsDir: path.join(t.dir, 'logs') },
      stateDir: path.join(t.dir, 'state'),
      challengeDir: path.join(t.dir, 'acme'),
    });
    const skip = ['dns', 'caa', 'port80'];
    const [first] = await (await createAutoSsl(config)).issue(['limited.example.test'], { skipChecks: skip });
    expect(first!.error).toMatchObject({ code: 'RATE_LIMITED', details: { until: '2099-01-01T00:00:00.000Z' } });
    const runs = fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean).length;
    const [second] = await (await createAutoSsl(config)).issue(['limited.example.test'], { skipChecks: skip });
    expect(second!.error).toMatchObject({
      code: 'RATE_LIMITED',
      message: expect.stringContaining('Not ordered: the CA rate-limited this account until 2099-01-01T00:00:00.000Z'),
    });
    expect(fs.readFileSync(calls, 'utf8').split('\n').filter(Boolean).length).toBe(runs); // certbot was not run again
  });
});
