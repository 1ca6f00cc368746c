/**
 * The cross-host redirect verdict both the self-check and the dry run use (issue 20, item 1): a redirect to a host
 * that resolves here is followed, one that resolves elsewhere names what the CA would reach, an IP literal needs no
 * DNS; and the redirects a config sends the challenge through, read from the config as nginx would route them.
 */
import { describe, expect, it } from 'vitest';
import { hostVerdict, literalResolution } from '../../src/preflight/redirect-hosts.js';
import { crossHostHops } from '../../src/nginx/redirect-hops.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { makeTree } from '../helpers/nginx-fixture.js';

const ours = new Set(['192.0.2.10', '2001:db8::10']);
const res = (a: string[], aaaa: string[] = []) => ({ name: 'x', a, aaaa, cnames: [] });

describe('cross-host redirects', () => {
  it('a host resolving here is probed here (IPv6 first), elsewhere is named, no records and IP literals are handled', () => {
    expect(hostVerdict('www.ex.test', 'ex.test', res(['192.0.2.10'], ['2001:db8::10']), ours)).toEqual({
      here: true,
      addresses: ['2001:db8::10', '192.0.2.10'],
    });
    const far = hostVerdict('www.ex.test', 'ex.test', res(['192.0.2.10', '198.51.100.7']), ours);
    expect(far).toMatchObject({ here: false });
    expect(!far.here && far.message).toMatch(
      /ex\.test, which resolves to 198\.51\.100\.7, not this server .*the CA would fetch the token from 198\.51\.100\.7/,
    );
    expect(hostVerdict('www.ex.test', 'gone.test', res([]), ours)).toMatchObject({ here: false, message: expect.stringContaining('no A or AAAA record') });
    expect(literalResolution('[2001:db8::10]')).toMatchObject({ aaaa: ['2001:db8::10'], a: [] });
    expect(literalResolution('192.0.2.10')).toMatchObject({ a: ['192.0.2.10'] });
    expect(literalResolution('ex.test')).toBeNull();
    expect(hostVerdict('www.ex.test', '[2001:db8::10]', literalResolution('[2001:db8::10]')!, ours)).toMatchObject({ here: true });
  });

  it('the hops of the challenge through this nginx: www -> apex is one cross-host hop, a loop ends, an unknown host is left to the real request', async () => {
    const t = await makeTree(
      'server {\n    listen 80;\n    server_name ex.test;\n    root /var/www/ex;\n}\nserver {\n    listen 80;\n    server_name www.ex.test;\n    return 301 $scheme://ex.test$request_uri;\n}\nserver {\n    listen 80;\n    server_name a.loop.test;\n    return 301 http://b.loop.test$request_uri;\n}\nserver {\n    listen 80;\n    server_name b.loop.test;\n    return 301 http://a.loop.test$request_uri;\n}\nserver {\n    listen 80;\n    server_name out.test;\n    return 302 https://cdn.elsewhere.test$request_uri;\n}\n',
    );
    const tree = NginxTree.load(t.main);
    expect(crossHostHops(tree, 'www.ex.test')).toEqual({ hops: [{ from: 'www.ex.test', host: 'ex.test' }], complete: true });
    expect(crossHostHops(tree, 'ex.test')).toEqual({ hops: [], complete: true });
    expect(crossHostHops(tree, 'a.loop.test').hops).toHaveLength(10);
    expect(crossHostHops(tree, 'out.test')).toEqual({ hops: [{ from: 'out.test', host: 'cdn.elsewhere.test' }], complete: false });
  });
});
