// ESLint (flat config): the import rules that keep the seams of issue 22 in place.
//
// - no import cycles in the shipped code (import-x/no-cycle);
// - layer boundaries: nginx is reached only through the Installer, certbot only through the Issuer, the SQLite
//   store only through the Store. Each boundary is its own rule name (the import-x plugin registered once per
//   seam), so each has its own list of files it applies to and its own exceptions.
//
// The exceptions are today's violators, one line each with the reason; each one is removed when its file goes
// through the seam. A new file that imports across a seam fails `npm run lint` (test/package/lint-rules.test.ts).
import tseslint from 'typescript-eslint';
import { createNodeResolver, importX } from 'eslint-plugin-import-x';

/**
 * One seam: the folders behind it, the folders allowed to import them, and today's other importers (each with
 * why it still may). Paths are relative to the repository root.
 */
export const SEAMS = [
  {
    rule: 'nginx-seam',
    behind: ['src/nginx'],
    allowed: ['src/nginx/**', 'src/installer/**'],
    message: 'nginx is reached through the Installer (src/installer), never src/nginx directly.',
    exceptions: {
      'src/config/schema.ts':
        "a config path that goes into nginx files is checked by nginx's own value rule (nginx/value.ts) when the config loads, before any Installer exists",
    },
  },
  {
    rule: 'certbot-seam',
    behind: ['src/certbot'],
    allowed: ['src/certbot/**', 'src/issuer/**'],
    message: 'certbot is reached through the Issuer (src/issuer), never src/certbot directly.',
    // certbot's renewal of the due lineages, its deploy hook's RENEWED_LINEAGE and its post hook's log are the
    // certbot issuer's (Issuer.renewDue, renewedLineage, lastRunFailures in src/issuer/certbot-renew.ts): none left
    exceptions: {},
  },
  {
    rule: 'store-seam',
    // the SQLite store (src/state before the Store seam moved it to src/store/sqlite)
    behind: ['src/state', 'src/store/sqlite'],
    allowed: ['src/state/**', 'src/store/**'],
    message: 'the SQLite store is reached through the Store interface (src/store), never directly.',
    // every importer goes through src/store (the Store interface, src/store/open.ts): none left
    exceptions: {},
  },
];

export default tseslint.config(
  { ignores: ['dist/**', 'node_modules/**', 'fixtures/**'] },
  // typescript-eslint's rules that need no type information (fast: no program is built)
  ...tseslint.configs.recommended.map((config) => ({ ...config, files: ['**/*.ts'] })),
  {
    files: ['**/*.ts'],
    // the sources carry `eslint-disable no-control-regex` for the rule set of @eslint/js, which is not enabled here
    linterOptions: { reportUnusedDisableDirectives: 'off' },
    languageOptions: { parser: tseslint.parser, ecmaVersion: 2022, sourceType: 'module' },
    plugins: { 'import-x': importX },
    settings: {
      // the files no-cycle follows, and the parser it reads them with
      'import-x/extensions': ['.ts', '.js'],
      'import-x/parsers': { '@typescript-eslint/parser': ['.ts'] },
      // imports name the compiled .js; the source is the .ts beside it
      'import-x/resolver-next': [createNodeResolver({ extensions: ['.ts', '.js', '.json'], extensionAlias: { '.js': ['.ts', '.js'] } })],
    },
  },
  {
    files: ['src/**/*.ts', 'plugins/**/*.ts'],
    rules: { 'import-x/no-cycle': ['error', { ignoreExternal: true }] },
  },
  ...SEAMS.map((seam) => ({
    files: ['src/**/*.ts'],
    ignores: [...seam.allowed, ...Object.keys(seam.exceptions)],
    plugins: { [seam.rule]: importX },
    rules: {
      [`${seam.rule}/no-restricted-paths`]: ['error', { zones: seam.behind.map((from) => ({ target: './src', from: `./${from}`, message: seam.message })) }],
    },
  })),
);
