/**
 * Finding and reading the config with cosmiconfig (module name "autossl": autossl.config.{js,mjs,ts,json,yaml},
 * .autosslrc*, package.json#autossl), or the file given with --config.
 */
import fs from 'node:fs';
import path from 'node:path';
import { stripVTControlCharacters } from 'node:util';
import { cosmiconfig } from 'cosmiconfig';
import { AutoSslError } from '../errors.js';
import { validateConfig, type AutoSslConfig } from './schema.js';

const MODULE = 'autossl';
const SEARCH_PLACES = [
  'package.json',
  `.${MODULE}rc`,
  `.${MODULE}rc.json`,
  `.${MODULE}rc.yaml`,
  `.${MODULE}rc.yml`,
  `.${MODULE}rc.js`,
  `.${MODULE}rc.mjs`,
  `.${MODULE}rc.cjs`,
  `.${MODULE}rc.ts`,
  `${MODULE}.config.json`,
  `${MODULE}.config.yaml`,
  `${MODULE}.config.yml`,
  `${MODULE}.config.js`,
  `${MODULE}.config.mjs`,
  `${MODULE}.config.cjs`,
  `${MODULE}.config.ts`,
];
/** Where a server-wide config lives when none is found from the working directory up. */
export const SYSTEM_CONFIG_DIR = '/etc/autossl';

/** Largest config file autossl reads: a config is a few kilobytes; a bigger one is a mistake (or /dev/zero). */
export const MAX_CONFIG_BYTES = 4 * 1024 * 1024;
/** A JS/TS config module that never settles must not leave the command waiting forever. */
export const CONFIG_LOAD_TIMEOUT_MS = 15_000;

/** The named config must be a regular file of sane size (a FIFO would block, /dev/zero would never end). */
function checkConfigFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    throw new AutoSslError('CONFIG_NOT_FOUND', `Config file ${file} does not exist.`);
  }
  if (!st.isFile())
    throw new AutoSslError('CONFIG_INVALID', `${file} is not a regular file; give the path of the config file itself.`, {
      hint: 'Pass --config the config file (autossl.config.json or .yaml), not a directory or a device; "autossl init" writes one.',
    });
  if (st.size > MAX_CONFIG_BYTES) throw new AutoSslError('CONFIG_INVALID', `${file} is ${st.size} bytes; a config file is at most ${MAX_CONFIG_BYTES} bytes.`);
}

function withDeadline<T>(work: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () =>
        reject(
          new AutoSslError(
            'CONFIG_INVALID',
            `The config did not finish loading within ${ms / 1000} s: a JS or TS config whose export (or a promise it exports) never settles?`,
          ),
        ),
      ms,
    );
  });
  return Promise.race([work, deadline]).finally(() => clearTimeout(timer));
}

export async function loadConfig(options: { file?: string; cwd?: string; systemDir?: string; timeoutMs?: number } = {}): Promise<AutoSslConfig> {
  if (options.file) checkConfigFile(path.resolve(options.file));
  const explorer = cosmiconfig(MODULE, { cache: false, searchPlaces: SEARCH_PLACES, searchStrategy: 'global' });
  let result;
  try {
    result = await withDeadline(
      (async () => {
        let found = options.file ? await explorer.load(path.resolve(options.file)) : await explorer.search(options.cwd ?? process.cwd());
        if (!found && !options.file) {
          const system = cosmiconfig(MODULE, { cache: false, searchPlaces: SEARCH_PLACES, searchStrategy: 'none' });
          found = await system.search(options.systemDir ?? SYSTEM_CONFIG_DIR);
        }
        // a JS/TS config may export a promise: it must settle too
        if (found) found = { ...found, config: await found.config };
        return found;
      })(),
      options.timeoutMs ?? CONFIG_LOAD_TIMEOUT_MS,
    );
  } catch (error) {
    if (error instanceof AutoSslError) throw error;
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new AutoSslError('CONFIG_NOT_FOUND', `Config file ${options.file} does not exist.`);
    // cosmiconfig names the file; the parser's complaint follows on later lines: keep it, on one line, bounded
    // (without the code frame "> 1 | ..." parsers print, and the echo of the whole source "while parsing '...'")
    // parsers colour the code frame when the terminal (or FORCE_COLOR, as CI sets) allows: strip the colour first
    const message = stripVTControlCharacters(String(e.message ?? error))
      .split('\n')
      .filter((l) => l.trim() && !/^\s*>?\s*\d*\s*\|/.test(l) && !/^\s*-*\^\s*$/.test(l))
      .map((l) => l.trim().replace(/ while parsing '[\s\S]*$/, ''))
      .join(' ')
      .slice(0, 600);
    throw new AutoSslError('CONFIG_INVALID', message || 'The config file cannot be read.', {
      cause: error,
      hint: 'Fix the syntax where the message says (line, column or position), then run again.',
    });
  }
  if (!result || result.isEmpty) {
    throw new AutoSslError(
      'CONFIG_NOT_FOUND',
      options.file
        ? `Config file ${options.file} is empty.`
        : `No autossl config found from ${options.cwd ?? process.cwd()} upwards, nor in ${options.systemDir ?? SYSTEM_CONFIG_DIR}.`,
    );
  }
  return validateConfig(result.config, result.filepath, path.dirname(result.filepath));
}
