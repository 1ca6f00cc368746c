/**
 * The agent's signature scheme against the Opterius panel's own: the worked examples were computed with
 * `openssl dgst -sha256 -hmac` over the exact payloads the panel's AgentService builds (PHP json_encode escapes
 * "/" as "\/" and non-ASCII as \uXXXX; the query is not signed). Plus the refusals, one by one.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadTokens, parseRfc3339, RateLimiter, sign, verifyRequest, type Token } from '../../src/agent/auth.js';

const TOKEN = '0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef';
const TS = '2026-05-01T12:00:00+00:00';
const AT = Date.parse('2026-05-01T12:00:00Z');

describe("the panel's signature", () => {
  it.each([
    [
      'POST',
      '/ssl/issue-async',
      '{"domain":"example.com","email":"admin@example.com","username":"alice"}',
      'c7742230095dc8c53c0529644b1c71987ac65b8e5961eac0d5d8dc276f77e5e1',
    ],
    ['POST', '/ssl/status', '{"domain":"shop.example.com"}', '561e49b3001afd16b942e3d906212b062190ddab5ab0cd023e841d9f4cdbb96c'],
    ['GET', '/ssl/wildcard/progress?domain=example.com', '', 'c3637d69e5c6f33c2aec04787b2f895ea6a15cc1dccefeec404f82e7e407f7d3'],
    [
      'POST',
      '/ssl/upload',
      '{"domain":"example.com","username":"alice","certificate":"-----BEGIN CERTIFICATE-----\\nMIIB\\/k+Q=\\n-----END CERTIFICATE-----","private_key":"-----BEGIN PRIVATE KEY-----\\nMC4C\\/x==\\n-----END PRIVATE KEY-----"}',
      '5fab8b9f7e5442f23a809b224d57596ea355d3ddc249fd22db155cd3b382a4df',
    ],
    ['POST', '/ssl/status', '{"domain":"caf\\u00e9.example"}', '0bcf6605b86f7cff3501a843eb5a6af2aa431304d58e8100c3b24404aa76e1a5'],
  ])('%s %s verifies as the panel signed it', (method, url, body, signature) => {
    expect(sign(TOKEN, TS, method, url.split('?')[0]!, body)).toBe(signature);
    const tokens: Token[] = [{ id: 'x', key: Buffer.from(TOKEN) }];
    expect(verifyRequest({ method, url, timestamp: TS, signature, body: Buffer.from(body) }, tokens, AT + 1000).id).toBe('x');
  });

  it('hashes the raw bytes: the same JSON re-serialised ("\\/" as "/") does not verify', () => {
    const raw =
      '{"domain":"example.com","username":"alice","certificate":"-----BEGIN CERTIFICATE-----\\nMIIB\\/k+Q=\\n-----END CERTIFICATE-----","private_key":"-----BEGIN PRIVATE KEY-----\\nMC4C\\/x==\\n-----END PRIVATE KEY-----"}';
    const reserialised = JSON.stringify(JSON.parse(raw));
    expect(reserialised).not.toBe(raw);
    const tokens: Token[] = [{ id: 'x', key: Buffer.from(TOKEN) }];
    expect(() =>
      verifyRequest(
        {
          method: 'POST',
          url: '/ssl/upload',
          timestamp: TS,
          signature: '5fab8b9f7e5442f23a809b224d57596ea355d3ddc249fd22db155cd3b382a4df',
          body: Buffer.from(reserialised),
        },
        tokens,
        AT,
      ),
    ).toThrow(expect.objectContaining({ code: 'AGENT_AUTH_FAILED' }));
  });

  const tokens: Token[] = [
    { id: 'a', key: Buffer.from('x'.repeat(32)) },
    { id: 'b', key: Buffer.from(TOKEN) },
  ];
  const good = sign(TOKEN, TS, 'POST', '/ssl/status', '{}');
  const req = { method: 'POST', url: '/ssl/status', timestamp: TS, signature: good, body: Buffer.from('{}') };
  it.each([
    ['no X-Timestamp', { timestamp: undefined }, /Missing X-Timestamp/],
    ['no X-Signature', { signature: undefined }, /Missing X-Signature/],
    ['a tampered body', { body: Buffer.from('{ }') }, /does not match/],
    ['a tampered path', { url: '/ssl/issue-async' }, /does not match/],
    ['another method', { method: 'GET' }, /does not match/],
    ['301 s late', { now: AT + 301_000 }, /301 s old/],
    ['301 s early', { now: AT - 301_000 }, /301 s in the future/],
    ['a timestamp that is not RFC 3339', { timestamp: '1777636800' }, /not an RFC 3339/],
    ['a date with month 13', { timestamp: '2026-13-01T12:00:00+00:00' }, /not an RFC 3339/],
    ['63 hex digits', { signature: good.slice(1) }, /64 hex digits/],
    ['65 hex digits', { signature: good + '0' }, /64 hex digits/],
    ['upper-case hex', { signature: good.toUpperCase() }, /lowercase hex/],
    ['odd characters', { signature: 'g' + good.slice(1) }, /lowercase hex/],
  ])('refuses %s', (_name, change, message) => {
    const { now = AT, ...fields } = change as Record<string, unknown> & { now?: number };
    expect(() => verifyRequest({ ...req, ...fields } as typeof req, tokens, now)).toThrow(
      expect.objectContaining({ code: 'AGENT_AUTH_FAILED', message: expect.stringMatching(message) }),
    );
  });

  it('accepts every configured token (rotation), and 300 s of skew either way', () => {
    const other = sign('x'.repeat(32), TS, 'POST', '/ssl/status', '{}');
    expect(verifyRequest({ ...req, signature: other }, tokens, AT).id).toBe('a');
    expect(verifyRequest(req, tokens, AT + 300_000).id).toBe('b');
    expect(verifyRequest(req, tokens, AT - 300_000).id).toBe('b');
    expect(parseRfc3339('2026-05-01T12:00:00Z')).toBe(AT);
    expect(parseRfc3339('2026-05-01T14:00:00+02:00')).toBe(AT);
  });
});

describe('the tokens file', () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-tokens-'));
  const write = (text: string, mode = 0o600): string => {
    const f = path.join(dir, `t${Math.random()}`);
    fs.writeFileSync(f, text);
    fs.chmodSync(f, mode);
    return f;
  };

  it('refuses a file group or others can read, naming the fix', () => {
    expect(() => loadTokens(write(`${TOKEN}\n`, 0o644))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('mode 644'), hint: expect.stringContaining('chmod 600') }),
    );
    expect(() => loadTokens(write(`${TOKEN}\n`, 0o640))).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('ignores comments, blank lines and short tokens (an empty token never signs), and refuses a file with none usable', () => {
    const file = loadTokens(write(`# panel\n\n   \nshort\n${TOKEN}\n${TOKEN}\n`));
    expect(file.tokens.map((t) => t.key.toString())).toEqual([TOKEN]);
    expect(file.ignored).toEqual(['line 4: shorter than 16 characters']);
    expect(() => loadTokens(write('\n# nothing\nshort\n'))).toThrow(
      expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('no usable token') }),
    );
    expect(() => loadTokens(path.join(dir, 'missing'))).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID' }));
  });

  it('refuses a tokens file another user owns (whoever owns it can change the secrets)', () => {
    const f = write(`${TOKEN}\n`);
    fs.chownSync(f, 65534, 65534);
    expect(() => loadTokens(f)).toThrow(expect.objectContaining({ code: 'CONFIG_INVALID', message: expect.stringContaining('belongs to uid 65534') }));
  });

  it('never puts a secret into a message', () => {
    // both assertions must run: a loadTokens that stopped refusing the file would otherwise pass with none
    expect.assertions(2);
    try {
      loadTokens(write(`${TOKEN}\n`, 0o666));
    } catch (error) {
      expect(error).toMatchObject({ code: 'CONFIG_INVALID' });
      expect(JSON.stringify({ m: (error as Error).message, h: (error as { hint: string }).hint })).not.toContain(TOKEN);
    }
  });
});

describe('the rate limiter', () => {
  it('allows the burst, then the sustained rate, and says how long to wait', () => {
    const limiter = new RateLimiter(2, 3);
    const t = 1_000_000;
    expect([limiter.take('a', t), limiter.take('a', t), limiter.take('a', t)]).toEqual([0, 0, 0]);
    expect(limiter.take('a', t)).toBe(1);
    expect(limiter.take('b', t)).toBe(0); // per token
    expect(limiter.take('a', t + 500)).toBe(0);
  });
});
