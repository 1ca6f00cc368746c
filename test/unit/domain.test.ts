import { describe, expect, it } from 'vitest';
import { normalizeDomain, normalizeDomains } from '../../src/domain.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { locateServers, newVhostEdit, planHttpsEdit } from '../../src/nginx/edit.js';
import { makeTree } from '../helpers/nginx-fixture.js';

import { HOSTILE_DOMAINS as HOSTILE } from '../helpers/hostile.js';

describe('domain validation', () => {
  it.each(HOSTILE)('refuses %j with DOMAIN_INVALID and a message naming the value', (input) => {
    expect(() => normalizeDomain(input)).toThrow(expect.objectContaining({ code: 'DOMAIN_INVALID', message: expect.stringMatching(/^Invalid domain "/) }));
  });

  it('normalises case and the root dot', () => {
    expect(normalizeDomain('EXAMPLE.com.')).toBe('example.com');
    expect(normalizeDomains(['A.example.com', 'a.example.com.', 'b.example.com'])).toEqual(['a.example.com', 'b.example.com']);
  });

  it('allows a wildcard only when asked (DNS-01)', () => {
    expect(normalizeDomain('*.Example.com', { allowWildcard: true })).toBe('*.example.com');
  });

  it('accepts the longest legal names', () => {
    const label = 'a'.repeat(63);
    expect(normalizeDomain(`${label}.com`)).toBe(`${label}.com`);
  });

  it('an internationalized name is refused with its ASCII (punycode) form named, to use in the command and in server_name', () => {
    const refused = (input: string) => {
      try {
        normalizeDomain(input, { allowWildcard: true });
      } catch (error) {
        return `${(error as Error).message} | ${(error as { hint?: string }).hint}`;
      }
      return 'accepted';
    };
    expect(refused('Bücher.test')).toMatch(
      /its ASCII \(punycode\) form is xn--bcher-kva\.test\. \| Use xn--bcher-kva\.test, and write that form in nginx's server_name/,
    );
    expect(refused('*.bücher.test')).toContain('form is *.xn--bcher-kva.test');
    // no ASCII form (a bidi control): refused without a suggestion
    expect(refused('b\u202eücher.test')).toMatch(/no ASCII \(punycode\) form/);
  });

  it('VHOST_NOT_FOUND for a name whose server_name is written in Unicode says so (nginx compares bytes; browsers send punycode)', async () => {
    const tree = await makeTree('server {\n    listen 80;\n    server_name café.test;\n    root /var/www;\n}\n');
    expect(() => locateServers(NginxTree.load(tree.main), ['xn--caf-dma.test'])).toThrow(
      expect.objectContaining({
        code: 'VHOST_NOT_FOUND',
        hint: expect.stringMatching(/server_name "café\.test", the same name written in Unicode.*Write xn--caf-dma\.test in its server_name/),
      }),
    );
  });

  it('the editor refuses hostile names too, before planning anything', async () => {
    const tree = await makeTree('server {\n    listen 80;\n    server_name ok.example.test;\n    root /var/www;\n}\n');
    // (a wildcard is a name the editor takes: DNS-01 sites have them; the engine refuses it for HTTP-01 sites)
    for (const bad of HOSTILE.filter((h) => h !== '*.a.com')) {
      expect(() => planHttpsEdit(NginxTree.load(tree.main), newVhostEdit([bad]), { nginxVersion: [1, 22, 1] })).toThrow(
        expect.objectContaining({ code: 'DOMAIN_INVALID' }),
      );
    }
  });
});

describe('error messages quoting hostile input', () => {
  it('never carry a bidi control, separator or control character raw (a terminal would reorder or fake the line)', () => {
    for (const input of ['ab\u202ecd.test', 'a\u2066b.test', 'x\u2028y.test', 'e\u001b[31m.test', 'c\u0085d.test', 'tag\u{e0041}.test']) {
      let message = '';
      try {
        normalizeDomain(input);
      } catch (error) {
        message = `${(error as Error).message} ${(error as { hint: string }).hint}`;
      }
      expect(message, JSON.stringify(input)).toMatch(/^Invalid domain/);
      expect(message, JSON.stringify(input)).not.toMatch(/[\p{Cf}\p{Zl}\p{Zp}\u0000-\u0008\u000b-\u001f\u007f-\u009f]/u);
    }
  });
});
