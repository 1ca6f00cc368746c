/**
 * Writes docs/configuration.md from the config's schema (src/config/keys.ts). Run after changing a key:
 * `npm run docs:config`; test/unit/config-docs.test.ts fails while the committed file differs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { configurationDoc } from '../src/config/docs.js';

const file = path.resolve(import.meta.dirname, '../../docs/configuration.md');
const target = fs.existsSync(path.dirname(file)) ? file : path.resolve(import.meta.dirname, '../docs/configuration.md');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.writeFileSync(target, configurationDoc());
process.stdout.write(`wrote ${target}\n`);
