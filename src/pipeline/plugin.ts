/**
 * Plugins: what they are, how they are written (`definePlugin`), and how the config's plugin names are found.
 *
 * A plugin is `{ name, apply(hooks, api) }`, the same shape for the built-in stages and for user plugins (webpack's
 * `*Plugin.apply(compiler)`). A module default-exports a plugin, or a function of the plugin's options returning
 * one. Names in the config resolve, in order: `autossl:<name>` (a plugin shipped in autossl's plugins/ folder); a
 * path (relative to the config file); a package installed beside the config (node_modules from the config file's
 * directory upwards); a package among autossl's own dependencies.
 */
import fs from 'node:fs';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import type { AutoSslConfig, PluginSpec } from '../config/schema.js';
import { AutoSslError, quote } from '../errors.js';
import type { UndoService } from '../undo.js';
import type { DomainContext, JsonValue, RenewEvent, UndoHandle, UndoWhen } from './context.js';
import type { Hooks } from './hooks.js';

/** What a plugin's `apply` receives besides the hooks: its options and the services scoped to it. */
export interface PluginApi<Options = Record<string, unknown>> {
  /** The plugin's own name. */
  readonly name: string;
  readonly config: Readonly<AutoSslConfig>;
  /** The plugin's options from the config (`["name", { ...options }]`), validated if it was made with definePlugin. */
  readonly options: Options;
  /** Changes outside nginx's files that must be undone on failure, at the end of a run, or after a crash. */
  readonly undo: {
    /** Registers how to undo steps of this kind (call it in `apply`: a recovering process needs it too). */
    handle(kind: string, handler: (payload: JsonValue) => Promise<void>): void;
    /**
     * Records an undo step for the run of `scope` (a domain context or a renewal) before the plugin acts. `always`
     * steps run when the run ends (success or not), `failure` steps only when it fails; both run after a crash.
     */
    record(scope: DomainContext | RenewEvent, kind: string, payload: JsonValue, options?: { when?: UndoWhen }): Promise<UndoHandle>;
  };
  /** A line for whoever listens (the CLI prints it; the agent logs it), tagged with the plugin's name. */
  log(message: string, ctx?: DomainContext): void;
}

export interface Plugin<Options = Record<string, unknown>> {
  name: string;
  apply(hooks: Hooks, api: PluginApi<Options>): void | Promise<void>;
}

/** A module's default export: a plugin, or a function of the plugin's options returning one. */
export type PluginFactory<Options = Record<string, unknown>> = (options: Record<string, unknown>) => Plugin<Options> | Promise<Plugin<Options>>;

export interface PluginDefinition<Options> {
  name: string;
  /** Turns the raw options from the config into typed ones; throw (an AutoSslError or an Error) to refuse them. */
  options?: (raw: Record<string, unknown>) => Options;
  apply(hooks: Hooks, api: PluginApi<Options>): void | Promise<void>;
}

/**
 * Defines a plugin with typed, validated options. Export the result as the module's default:
 *
 *     export default definePlugin({ name: 'my-header', options: (raw) => ({ value: String(raw.value ?? 'x') }),
 *       apply(hooks, api) { hooks.vhost.tapPromise('my-header', async (edit) => { ...; return edit; }); } });
 */
export function definePlugin<Options = Record<string, unknown>>(definition: PluginDefinition<Options>): PluginFactory<Options> {
  if (!definition || typeof definition.name !== 'string' || !/^[A-Za-z0-9@/._:-]{1,100}$/.test(definition.name) || typeof definition.apply !== 'function') {
    throw new AutoSslError('PLUGIN_LOAD_FAILED', 'definePlugin needs { name, apply(hooks, api) } with a plain name.');
  }
  return (raw) => {
    let options: Options;
    try {
      options = definition.options ? definition.options(raw) : (raw as Options);
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin "${definition.name}": invalid options: ${message}`, {
        cause: error,
        details: { plugin: definition.name },
      });
    }
    return {
      name: definition.name,
      apply: (hooks, api) => definition.apply(hooks, { ...api, options }),
    };
  };
}

export function isPlugin(value: unknown): value is Plugin {
  return typeof value === 'object' && value !== null && typeof (value as Plugin).name === 'string' && typeof (value as Plugin).apply === 'function';
}

// ----------------------------------------------------------------------------------------------- resolution

/** The file a package's "exports" (or "main") leads to for an ESM import. */
function exportTarget(pkgDir: string, pkg: Record<string, unknown>, subpath: string): string | null {
  const pick = (target: unknown): string | null => {
    if (typeof target === 'string') return target;
    if (Array.isArray(target)) {
      for (const t of target) {
        const found = pick(t);
        if (found) return found;
      }
      return null;
    }
    if (target && typeof target === 'object') {
      for (const [condition, value] of Object.entries(target as Record<string, unknown>)) {
        if (['import', 'node', 'default', 'module'].includes(condition)) {
          const found = pick(value);
          if (found) return found;
        }
      }
    }
    return null;
  };
  const exportsField = pkg.exports;
  let relative: string | null = null;
  if (exportsField !== undefined && exportsField !== null) {
    const isMap = typeof exportsField === 'object' && !Array.isArray(exportsField) && Object.keys(exportsField as object).some((k) => k.startsWith('.'));
    if (isMap) relative = pick((exportsField as Record<string, unknown>)[subpath]);
    else if (subpath === '.') relative = pick(exportsField);
  } else if (subpath === '.') {
    relative = typeof pkg.main === 'string' ? pkg.main : 'index.js';
  } else relative = subpath;
  if (!relative) return null;
  const file = path.resolve(pkgDir, relative);
  if (file !== pkgDir && !file.startsWith(pkgDir + path.sep)) return null; // an export may not lead out of its package
  return file;
}

/** Finds a package by name in node_modules from `fromDir` upwards; returns the file to import, or null. */
export function resolvePackage(specifier: string, fromDir: string): string | null {
  const m = /^((?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*)(\/.*)?$/i.exec(specifier);
  if (!m) return null;
  const [, name, sub] = m;
  for (let dir = path.resolve(fromDir); ; dir = path.dirname(dir)) {
    const pkgDir = path.join(dir, 'node_modules', name!);
    const pkgFile = path.join(pkgDir, 'package.json');
    if (fs.existsSync(pkgFile)) {
      let pkg: Record<string, unknown>;
      try {
        pkg = JSON.parse(fs.readFileSync(pkgFile, 'utf8')) as Record<string, unknown>;
      } catch {
        return null;
      }
      let file = exportTarget(pkgDir, pkg, sub ? `.${sub}` : '.');
      if (file && !path.extname(file) && fs.existsSync(`${file}.js`)) file = `${file}.js`;
      return file && fs.existsSync(file) ? file : null;
    }
    if (path.dirname(dir) === dir) return null;
  }
}

/** "autossl:webhook" names a plugin shipped in plugins/ (compiled next to this file's dist tree). */
function shippedPlugin(name: string): string | null {
  const m = /^autossl:([a-z0-9-]+)$/.exec(name);
  if (!m) return null;
  // compiled (dist/plugins/<name>/index.js), or the source when autossl itself runs from source (its tests)
  for (const ext of ['js', 'ts']) {
    const file = new URL(`../../plugins/${m[1]}/index.${ext}`, import.meta.url);
    if (fs.existsSync(file)) return file.href;
  }
  return null;
}

/** Where a plugin name or path leads: a file URL to import, or a bare specifier for autossl's own dependencies. */
export function locate(spec: string, configDir: string): string {
  if (spec.startsWith('autossl:')) {
    const shipped = shippedPlugin(spec);
    if (!shipped)
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `There is no shipped plugin ${quote(spec)}.`, {
        hint: 'Shipped plugins: autossl:webhook, autossl:cloudflare-proxy, autossl:cloudflare-dns. Check the name, or give a path or a package name.',
        details: { plugin: spec },
      });
    return shipped;
  }
  if (path.isAbsolute(spec)) {
    checkPluginFile(spec);
    return pathToFileURL(spec).href;
  }
  // anything else must be a package name: not a URL (data:, node:, https:) that the loader would run or fetch
  if (!PACKAGE_NAME.test(spec)) {
    throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin ${quote(spec)} is neither a path, nor "autossl:<name>", nor a package name.`, {
      hint: 'Give the plugin\'s path (absolute, or relative to the config file: "./my-plugin.mjs"), a shipped plugin ("autossl:webhook"), or the name of a package installed beside the config.',
      details: { plugin: spec },
    });
  }
  const beside = resolvePackage(spec, configDir);
  if (beside) checkPluginFile(beside);
  return beside ? pathToFileURL(beside).href : spec;
}

/** An npm package name, optionally scoped, with an optional subpath. */
const PACKAGE_NAME = /^(?:@[a-z0-9][a-z0-9._~-]*\/)?[a-z0-9][a-z0-9._~-]*(?:\/[A-Za-z0-9._~-]+)*$/;

/** Largest plugin module autossl imports (a plugin is kilobytes; this only stops a runaway file). */
const MAX_PLUGIN_BYTES = 16 * 1024 * 1024;

/**
 * A plugin file must be a regular file of sane size before the module loader reads it: the loader reads to the
 * end, so a device (/dev/zero) grows memory without bound and a FIFO blocks forever.
 */
function checkPluginFile(file: string): void {
  let st: fs.Stats;
  try {
    st = fs.statSync(file);
  } catch {
    return; // the loader reports a missing file with its own message
  }
  if (st.isDirectory()) return; // (the loader's "Directory import is not supported")
  if (!st.isFile())
    throw new AutoSslError(
      'PLUGIN_LOAD_FAILED',
      `Plugin ${quote(file)} is not a regular file (a device, FIFO or socket); give the path of the plugin's module.`,
      { details: { plugin: file } },
    );
  if (st.size > MAX_PLUGIN_BYTES)
    throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin ${quote(file)} is ${st.size} bytes; a plugin module is at most ${MAX_PLUGIN_BYTES} bytes.`, {
      details: { plugin: file },
    });
}

/** Imports a plugin module: its default export is a plugin object, or a factory taking the options. */
export async function loadPlugin(spec: PluginSpec, configDir: string): Promise<Plugin> {
  let mod: Record<string, unknown>;
  const target = locate(spec.module, configDir);
  try {
    mod = (await import(target)) as Record<string, unknown>;
  } catch (error) {
    const message = (error as Error).message?.split('\n')[0] ?? String(error);
    const notFound = (error as NodeJS.ErrnoException).code === 'ERR_MODULE_NOT_FOUND' && target === spec.module;
    throw new AutoSslError(
      'PLUGIN_LOAD_FAILED',
      notFound
        ? `Cannot find plugin package ${quote(spec.module)} beside the config (${configDir}) or among autossl's own packages.`
        : `Cannot load plugin ${quote(spec.module)}: ${message}`,
      {
        hint: notFound ? `Install it beside the config (cd ${configDir} && npm install ${spec.module}), or give its path.` : undefined,
        cause: error,
        details: { plugin: spec.module },
      },
    );
  }
  let candidate = mod.default ?? mod.plugin;
  if (typeof candidate === 'function' && !isPlugin(candidate)) {
    try {
      candidate = await (candidate as PluginFactory)(spec.options);
    } catch (error) {
      if (error instanceof AutoSslError) throw error;
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `Plugin ${quote(spec.module)} refused its options: ${(error as Error).message}`, {
        cause: error,
        details: { plugin: spec.module },
      });
    }
  }
  if (!isPlugin(candidate)) {
    throw new AutoSslError(
      'PLUGIN_LOAD_FAILED',
      `Plugin ${quote(spec.module)} does not export { name, apply(hooks, api) } (as default, or a default function returning it).`,
      { details: { plugin: spec.module } },
    );
  }
  return candidate;
}

/** The api a plugin's apply receives. */
export function pluginApi<O>(
  plugin: Plugin<O>,
  config: AutoSslConfig,
  options: O,
  undo: UndoService,
  log: (message: string, ctx?: DomainContext) => void,
): PluginApi<O> {
  return {
    name: plugin.name,
    config,
    options,
    undo: {
      handle: (kind, handler) => undo.handle(plugin.name, kind, handler),
      record: (scope, kind, payload, opts) => undo.record(plugin.name, scope.runId, kind, payload, opts?.when, 'owner' in scope ? scope.owner : undefined),
    },
    log: (message, ctx) => log(`${plugin.name}: ${message}`, ctx),
  };
}
