/**
 * Finding and reading the config with cosmiconfig (module name "autossl": autossl.config.{js,mjs,ts,json,yaml},
 * .autosslrc*, package.json#autossl), or the file given with --config.
 */
import path from 'node:path';
import { cosmiconfig } from 'cosmiconfig';
import { AutoSslError } from '../errors.js';
import { validateConfig, type AutoSslConfig } from './schema.js';

const MODULE = 'autossl';
const SEARCH_PLACES = [
  'package.json',
  `.${MODULE}rc`, `.${MODULE}rc.json`, `.${MODULE}rc.yaml`, `.${MODULE}rc.yml`, `.${MODULE}rc.js`, `.${MODULE}rc.mjs`, `.${MODULE}rc.cjs`, `.${MODULE}rc.ts`,
  `${MODULE}.config.json`, `${MODULE}.config.yaml`, `${MODULE}.config.yml`, `${MODULE}.config.js`, `${MODULE}.config.mjs`, `${MODULE}.config.cjs`, `${MODULE}.config.ts`,
];
/** Where a server-wide config lives when none is found from the working directory up. */
export const SYSTEM_CONFIG_DIR = '/etc/autossl';

export async function loadConfig(options: { file?: string; cwd?: string; systemDir?: string } = {}): Promise<AutoSslConfig> {
  const explorer = cosmiconfig(MODULE, { cache: false, searchPlaces: SEARCH_PLACES, searchStrategy: 'global' });
  let result;
  try {
    result = options.file ? await explorer.load(path.resolve(options.file)) : await explorer.search(options.cwd ?? process.cwd());
    if (!result && !options.file) {
      const system = cosmiconfig(MODULE, { cache: false, searchPlaces: SEARCH_PLACES, searchStrategy: 'none' });
      result = await system.search(options.systemDir ?? SYSTEM_CONFIG_DIR);
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new AutoSslError('CONFIG_NOT_FOUND', `Config file ${options.file} does not exist.`);
    // cosmiconfig names the file and the parser's complaint ("JSON Error in /x/autossl.config.json: ...")
    throw new AutoSslError('CONFIG_INVALID', e.message.split('\n')[0] ?? String(error), { cause: error });
  }
  if (!result || result.isEmpty) {
    throw new AutoSslError('CONFIG_NOT_FOUND', options.file ? `Config file ${options.file} is empty.` : `No autossl config found from ${options.cwd ?? process.cwd()} upwards, nor in ${options.systemDir ?? SYSTEM_CONFIG_DIR}.`);
  }
  return validateConfig(result.config, result.filepath, path.dirname(result.filepath));
}
