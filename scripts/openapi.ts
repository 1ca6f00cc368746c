/**
 * Writes docs/openapi.json from the agent's route table (src/agent/routes.ts). Run after changing a route:
 * `npm run openapi`; test/agent/routes.test.ts fails while the committed document differs.
 */
import fs from 'node:fs';
import path from 'node:path';
import { openapiDocument } from '../src/agent/routes.js';
import { packageVersion } from '../src/agent/answers.js';

const file = path.resolve(import.meta.dirname, '../../docs/openapi.json');
const target = fs.existsSync(path.dirname(file)) ? file : path.resolve(import.meta.dirname, '../docs/openapi.json');
fs.mkdirSync(path.dirname(target), { recursive: true });
fs.writeFileSync(target, JSON.stringify(openapiDocument(packageVersion()), null, 2) + '\n');
process.stdout.write(`wrote ${target}\n`);
