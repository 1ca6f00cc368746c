import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configurationDoc } from '../../src/config/docs.js';
import { ConfigSchema } from '../../src/config/keys.js';

const FILE = path.resolve(import.meta.dirname, '../../docs/configuration.md');

describe('docs/configuration.md', () => {
  it('is what the schema generates (npm run docs:config writes it)', () => {
    expect(fs.readFileSync(FILE, 'utf8'), 'docs/configuration.md is stale: run npm run docs:config').toBe(configurationDoc());
  });

  it('has a row for every key of the schema, nested ones included', () => {
    const doc = configurationDoc();
    const keys = (schema: { properties?: Record<string, unknown> }, prefix: string): string[] =>
      Object.entries(schema.properties ?? {}).flatMap(([k, s]) => {
        const sub = s as { type?: string; properties?: Record<string, unknown>; items?: { properties?: Record<string, unknown> } };
        const name = prefix + k;
        if (sub.properties) return keys(sub, `${name}.`);
        if (sub.type === 'array' && sub.items?.properties) return keys(sub.items, `${name}[].`);
        return [name];
      });
    const all = keys(ConfigSchema, '');
    expect(all).toContain('agent.limits.bodyBytesInFlight');
    expect(all).toContain('sites[].blockNames');
    for (const key of all) expect(doc).toContain(`| \`${key}\` |`);
  });
});
