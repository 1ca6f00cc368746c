/**
 * Finding and reading the config with cosmiconfig (module name "autossl": autossl.config.{js,mjs,ts,json,yaml},
 * .autosslrc*, package.json#autossl), or the file given with --config.
 */
import path from 'node:path';
import { cosmiconfig } from 'cosmiconfig';
import { AutoSslError } from '../errors.js';
import { validateConfig, type AutoSslConfig } from './schema.js';

export async function loadConfig(options: { file?: string; cwd?: string } = {}): Promise<AutoSslConfig> {
  const explorer = cosmiconfig('autossl', { cache: false });
  let result;
  try {
    result = options.file ? await explorer.load(path.resolve(options.file)) : await explorer.search(options.cwd ?? process.cwd());
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    if (e.code === 'ENOENT') throw new AutoSslError('CONFIG_NOT_FOUND', `Config file ${options.file} does not exist.`);
    // cosmiconfig names the file and the parser's complaint ("JSON Error in /x/autossl.config.json: ...")
    throw new AutoSslError('CONFIG_INVALID', e.message.split('\n')[0] ?? String(error), { cause: error });
  }
  if (!result || result.isEmpty) {
    throw new AutoSslError('CONFIG_NOT_FOUND', options.file ? `Config file ${options.file} is empty.` : `No autossl config found from ${options.cwd ?? process.cwd()} upwards.`);
  }
  return validateConfig(result.config, result.filepath, path.dirname(result.filepath));
}
