/**
 * The lint rules that hold the seams of issue 22 (eslint.config.js): a new file that imports src/nginx, src/certbot
 * or the SQLite store from outside the Installer, the Issuer or the Store fails; an import cycle fails; and every
 * listed exception is still a real violator (an exception whose file went through its seam must be dropped, so
 * the list only shrinks).
 */
import fs from 'node:fs';
import path from 'node:path';
import { ESLint } from 'eslint';
import { importX } from 'eslint-plugin-import-x';
import { afterAll, describe, expect, it } from 'vitest';
import { SEAMS } from '../../eslint.config.js';

const ROOT = path.resolve(import.meta.dirname, '../..');
const eslint = new ESLint({ cwd: ROOT, cache: false });

/** The rule ids a source would raise if it were the file at `file` (it need not exist: lintText names it). */
async function rulesFor(file: string, source: string): Promise<string[]> {
  const [result] = await eslint.lintText(source, { filePath: path.join(ROOT, file) });
  return result!.messages.map((m) => `${m.ruleId}: ${m.message}`);
}

describe('layer boundaries', () => {
  it('a new file in src/pipeline that imports src/nginx fails', async () => {
    const errors = await rulesFor('src/pipeline/new-stage.ts', `import { parseConfig } from '../nginx/parse.js';\nexport const p = parseConfig;\n`);
    expect(errors).toEqual([expect.stringMatching(/^nginx-seam\/no-restricted-paths: .*through the Installer/)]);
  });

  it('src/nginx is allowed from the Installer and from src/nginx itself', async () => {
    expect(await rulesFor('src/installer/new-installer.ts', `import { parseConfig } from '../nginx/parse.js';\nexport const p = parseConfig;\n`)).toEqual([]);
    expect(await rulesFor('src/nginx/new-part.ts', `import { parseConfig } from './parse.js';\nexport const p = parseConfig;\n`)).toEqual([]);
  });

  it('a new file that imports src/certbot outside the Issuer fails; the Issuer may', async () => {
    const source = `import * as certbot from '../certbot/certbot.js';\nexport const c = certbot;\n`;
    expect(await rulesFor('src/stages/new-stage.ts', source)).toEqual([expect.stringMatching(/^certbot-seam\/no-restricted-paths: .*through the Issuer/)]);
    expect(await rulesFor('src/issuer/new-issuer.ts', source)).toEqual([]);
  });

  it('renewal reaches certbot only through the Issuer: certbot renew, its hooks and its log are no exception', async () => {
    expect(SEAMS.find((s) => s.rule === 'certbot-seam')!.exceptions).toEqual({});
    const source = `import { execCertbot } from '../certbot/certbot.js';\nexport const run = execCertbot;\n`;
    for (const file of ['src/renewal/renew.ts', 'src/renewal/renew-hook.ts', 'src/renewal/deploy-hook.ts'])
      expect(await rulesFor(file, source)).toEqual([expect.stringMatching(/^certbot-seam\/no-restricted-paths: .*through the Issuer/)]);
  });

  it('a new file that imports the SQLite store outside src/store fails; src/store may', async () => {
    const seam = SEAMS.find((s) => s.rule === 'store-seam')!;
    // whichever holds the SQLite store on this branch (src/state today, src/store/sqlite after the Store seam)
    const sqlite = seam.behind.flatMap((dir) =>
      fs.existsSync(path.join(ROOT, dir))
        ? fs
            .readdirSync(path.join(ROOT, dir))
            .filter((f) => f.endsWith('.ts'))
            .map((f) => `${dir}/${f}`)
        : [],
    )[0]!;
    expect(sqlite).toBeDefined();
    const importFrom = (file: string) =>
      `import * as store from '${path.relative(path.dirname(path.join(ROOT, file)), path.join(ROOT, sqlite)).replace(/\.ts$/, '.js')}';\nexport const s = store;\n`;
    expect(await rulesFor('src/renewal/new-part.ts', importFrom('src/renewal/new-part.ts'))).toEqual([
      expect.stringMatching(/^store-seam\/no-restricted-paths: /),
    ]);
    expect(await rulesFor('src/store/new-store.ts', importFrom('src/store/new-store.ts'))).toEqual([]);
  });

  it('every listed exception still imports across its seam (drop the ones that went through it)', async () => {
    // the seams' rules applied to their own exceptions: each must still raise its error
    const checking = new ESLint({
      cwd: ROOT,
      cache: false,
      overrideConfig: SEAMS.filter((seam) => Object.keys(seam.exceptions).length > 0).map((seam) => ({
        files: Object.keys(seam.exceptions),
        plugins: { [`${seam.rule}-check`]: importX },
        rules: { [`${seam.rule}-check/no-restricted-paths`]: ['error', { zones: seam.behind.map((from) => ({ target: './src', from: `./${from}` })) }] },
      })),
      ruleFilter: ({ ruleId }) => ruleId.endsWith('-check/no-restricted-paths'),
    });
    const files = [...new Set(SEAMS.flatMap((s) => Object.keys(s.exceptions)))].filter((f) => fs.existsSync(path.join(ROOT, f)));
    const results = await checking.lintFiles(files);
    const raised = new Set(results.flatMap((r) => r.messages.map((m) => `${m.ruleId!.replace(/-check\/.*/, '')} ${path.relative(ROOT, r.filePath)}`)));
    const stale = SEAMS.flatMap((s) => Object.keys(s.exceptions).map((f) => `${s.rule} ${f}`)).filter((e) => !raised.has(e));
    expect(stale, 'exceptions in eslint.config.js that no longer import across their seam: remove them').toEqual([]);
  });
});

describe('import cycles', () => {
  const dir = path.join(ROOT, 'src', `lint-probe-${process.pid}`);
  afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('two files of src that import each other fail', async () => {
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(path.join(dir, 'a.ts'), `import { b } from './b.js';\nexport const a = () => b;\n`);
    fs.writeFileSync(path.join(dir, 'b.ts'), `import { a } from './a.js';\nexport const b = () => a;\n`);
    const results = await eslint.lintFiles([path.join(dir, 'a.ts')]);
    expect(results.flatMap((r) => r.messages.map((m) => m.ruleId))).toEqual(['import-x/no-cycle']);
  });
});
