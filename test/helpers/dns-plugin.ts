/**
 * A DNS-01 provider plugin of the test suite, as a module's source to write beside a config: TXT records through
 * pebble-challtestsrv's management API (127.0.0.1:8055), checked on its DNS (127.0.0.1:8053). With `zones`, it
 * answers only for names under them (to test a domain no provider serves).
 */
export function dnsPluginSource(zones: readonly string[] = []): string {
  return `import dns from 'node:dns';
const MGMT = 'http://127.0.0.1:8055';
const ZONES = ${JSON.stringify(zones)};
async function post(p, body) {
  const res = await fetch(MGMT + p, { method: 'POST', body: JSON.stringify(body) });
  if (!res.ok) throw new Error('challtestsrv ' + p + ': ' + res.status);
}
async function values(fqdn) {
  const r = new dns.promises.Resolver();
  r.setServers(['127.0.0.1:8053']);
  try { return (await r.resolveTxt(fqdn)).map((c) => c.join('')); } catch { return []; }
}
export default {
  name: 'test-dns',
  apply(hooks) {
    hooks.challenge.tapPromise({ name: 'test-dns', stage: -100 }, async (ctx) => {
      if (ctx.plan.challenge !== 'dns-01') return undefined;
      const bare = ctx.domain.replace(/^\\*\\./, '');
      if (ZONES.length && !ZONES.some((z) => bare === z || bare.endsWith('.' + z))) return undefined;
      return { type: 'dns-01', solver: {
        name: 'test-dns',
        async present(r) { await post('/set-txt', { host: r.fqdn + '.', value: r.value }); },
        // challtestsrv clears every value of a name: put back the others (an apex and a wildcard share one name)
        async cleanup(r) {
          const keep = (await values(r.fqdn)).filter((v) => v !== r.value);
          await post('/clear-txt', { host: r.fqdn + '.' });
          for (const v of keep) await post('/set-txt', { host: r.fqdn + '.', value: v });
        },
      } };
    });
  },
};
`;
}
