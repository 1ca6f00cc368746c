/**
 * src/config/validate-config.generated.ts is Ajv's standalone code for the config schema (compiled ahead: compiling
 * it at each start cost a CLI run ~0.15 s of CPU). It must be what the schema generates now.
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { configValidatorSource, GENERATED } from '../../scripts/config-validator.js';

describe('the config validator generated ahead', () => {
  it('is what src/config/keys.ts generates (npm run config:validator writes it)', () => {
    const committed = fs.readFileSync(path.resolve(import.meta.dirname, '../..', GENERATED), 'utf8');
    expect(committed === configValidatorSource(), `${GENERATED} is stale: run npm run config:validator`).toBe(true);
  });
});
