#!/usr/bin/env node
/**
 * certbot's manual HTTP-01 hooks on a fleet node: `hook-main.js auth|cleanup --config FILE`. An entry of its own,
 * not the CLI: certbot runs one per challenge, twenty at once in a batch, and the CLI's imports (the engine) cost a
 * loaded machine seconds per process; this one loads the config, the store and the fleet's challenge code only.
 */
import { parseArgs } from 'node:util';
import { loadConfig } from '../config/load.js';
import { toAutoSslError } from '../errors.js';
import { fleetHook } from './hook.js';

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({ args: process.argv.slice(2), allowPositionals: true, options: { config: { type: 'string' } } });
  try {
    const config = await loadConfig({ file: values.config });
    process.stdout.write(`${await fleetHook(config, positionals[0] ?? '', process.env)}\n`);
    return 0;
  } catch (error) {
    const e = toAutoSslError(error);
    process.stderr.write(`error ${e.code}: ${e.message}\n  hint: ${e.hint}\n`);
    return 1;
  }
}

process.exitCode = await main();
