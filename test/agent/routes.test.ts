/**
 * The OpenAPI document: the committed docs/openapi.json is what the route table gives, and it names exactly the
 * routes the agent's server registers (each method and path, no more, no fewer).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { validateConfig } from '../../src/config/schema.js';
import { openapiDocument, ROUTES } from '../../src/agent/routes.js';
import { SiteProperties } from '../../src/config/keys.js';
import { Username } from '../../src/agent/fields.js';
import { panelUsername } from '../../src/agent/input.js';
import { buildApp, routesOf, type AgentContext } from '../../src/agent/server.js';
import { packageVersion } from '../../src/agent/answers.js';

const committed = JSON.parse(fs.readFileSync(path.resolve(import.meta.dirname, '../../docs/openapi.json'), 'utf8')) as {
  openapi: string;
  paths: Record<string, Record<string, unknown>>;
};

describe('the OpenAPI document', () => {
  it('is up to date (npm run openapi writes it)', () => {
    expect(committed).toEqual(openapiDocument(packageVersion()));
    expect(committed.openapi).toBe('3.1.0');
  });

  it('documents exactly the routes the server registers', async () => {
    const config = validateConfig({ agent: { logLevel: 'silent' } });
    const app = buildApp({ config } as unknown as AgentContext, []);
    await app.ready();
    const running = routesOf(app)
      .map((r) => `${r.method} ${r.url.replace(/:([A-Za-z]+)/g, '{$1}')}`)
      .sort();
    const documented = Object.entries(committed.paths)
      .flatMap(([p, ops]) => Object.keys(ops).map((m) => `${m.toUpperCase()} ${p}`))
      .sort();
    expect(running).toEqual(documented);
    expect(running).toHaveLength(ROUTES.length);
    await app.close();
  });

  it('every route but /health is signed, and every mutating route is a POST', () => {
    expect(ROUTES.filter((r) => !r.signed).map((r) => r.url)).toEqual(['/health']);
    for (const r of ROUTES.filter((x) => x.mutating)) expect(r.method).toBe('POST');
  });

  it('takes its request schemas from the same TypeBox definitions as the config and the hand validators', () => {
    const issue = ROUTES.find((r) => r.id === 'v1.issue')!;
    const site = (issue.body!.properties as { sites: { items: { properties: Record<string, unknown> } } }).sites.items.properties;
    for (const key of ['challenge', 'redirect', 'hsts'] as const) expect(site[key]).toBe(SiteProperties[key]);
    expect((site.username as typeof Username).pattern).toBe(Username.pattern);
    // the schema's pattern is the hand validator's: what one refuses, the other does
    for (const name of ['alice', 'web_1', '_x']) expect(new RegExp(Username.pattern!).test(name) && panelUsername(name)).toBe(name);
    for (const name of ['Alice', 'a.b', 'ŝ', 'a'.repeat(33)]) {
      expect(new RegExp(Username.pattern!).test(name)).toBe(false);
      expect(() => panelUsername(name)).toThrow(expect.objectContaining({ code: 'AGENT_BAD_REQUEST' }));
    }
  });
});
