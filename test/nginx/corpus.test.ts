/**
 * The shared real-world corpus (shared/nginx-corpus, located by .ci/run through AUTOSSL_CORPUS): every file
 * reads and prints back byte for byte; every file the real `nginx -t` accepts (includes and certificates
 * stubbed) is, for each server name it serves on port 80, either edited to the fixtures' standard or refused
 * with a typed error and left byte-identical. This suite fails, not skips, when the corpus is missing.
 */
import fs from 'node:fs';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { AutoSslError } from '../../src/errors.js';
import { normalizeDomain } from '../../src/domain.js';
import { parseConfig, printConfig, walkDirectives, argValues } from '../../src/nginx/parse.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree, runIssueEdits, testCertificate } from '../helpers/nginx-fixture.js';
import { linesOutsideTargets } from '../helpers/confined.js';

const corpus = process.env.AUTOSSL_CORPUS ?? ['../shared/nginx-corpus', '/work/shared/nginx-corpus'].map((p) => path.resolve(p)).find((p) => fs.existsSync(p));
const files = corpus && fs.existsSync(corpus) ? fs.readdirSync(corpus).filter((f) => f.endsWith('.conf')).sort() : [];

const REFUSALS = new Set(['NGINX_PARSE_ERROR', 'VHOST_UNSUPPORTED', 'VHOST_NOT_FOUND', 'CHALLENGE_UNROUTABLE', 'VHOST_AMBIGUOUS', 'VHOST_EDIT_UNSAFE']);

function candidateNames(source: string): string[] {
  const names = new Set<string>();
  for (const d of walkDirectives(parseConfig(source).children)) {
    if (d.name !== 'server_name') continue;
    for (const n of argValues(d)) {
      try {
        names.add(normalizeDomain(n));
      } catch {
        // "_", "localhost", regexes, wildcards: not names a certificate is issued for
      }
    }
  }
  return [...names];
}

/** Creates empty files for relative includes and test certificates for relative ssl_certificate paths. */
async function stubDependencies(source: string, dir: string): Promise<void> {
  const { cert, key } = await testCertificate();
  for (const d of walkDirectives(parseConfig(source).children)) {
    const target = argValues(d)[0];
    if (!target || path.isAbsolute(target) || target.includes('$')) continue;
    const full = path.join(dir, target);
    if (d.name === 'include' && !/[*?[]/.test(target) && !fs.existsSync(full)) {
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.writeFileSync(full, '');
    }
    if ((d.name === 'ssl_certificate' || d.name === 'ssl_certificate_key') && !fs.existsSync(full)) {
      fs.mkdirSync(path.dirname(full), { recursive: true });
      fs.copyFileSync(d.name === 'ssl_certificate' ? cert : key, full);
    }
  }
}

const tally = { edited: [] as string[], refused: [] as string[], rejectedByNginx: [] as string[] };

describe('nginx corpus', () => {
  afterAll(() => {
    console.log(`corpus: ${tally.edited.length} names edited, ${tally.refused.length} refused (${tally.refused.join('; ')}), ${tally.rejectedByNginx.length} files nginx -t rejects as given`);
  });

  it('is present (CI points AUTOSSL_CORPUS at shared/nginx-corpus)', () => {
    expect(files.length).toBeGreaterThan(20);
  });

  it.each(files)('%s', async (file) => {
    const source = fs.readFileSync(path.join(corpus!, file), 'latin1');
    expect(printConfig(parseConfig(source, file))).toBe(source);
    const isMain = parseConfig(source).children.some((n) => n.kind === 'directive' && (n.name === 'http' || n.name === 'events'));
    if (isMain) return; // a whole nginx.conf: read and printed back above; its vhosts are not in the http include path
    const tree = await makeTree(source);
    await stubDependencies(source, tree.dir);
    const accepted = await tree.control.test().then(() => true, () => false);
    if (!accepted) tally.rejectedByNginx.push(file);
    if (!accepted) return; // nginx itself refuses it (spdy, missing upstream host, deliberately broken)
    for (const name of candidateNames(source)) {
      const before = fs.readFileSync(tree.site, 'latin1');
      try {
        await runIssueEdits(tree, { names: [name] });
      } catch (error) {
        expect(error).toBeInstanceOf(AutoSslError);
        expect(REFUSALS.has((error as AutoSslError).code), `${name}: ${(error as Error).message}`).toBe(true);
        expect(sha256(fs.readFileSync(tree.site, 'latin1'))).toBe(sha256(before));
        tally.refused.push(`${file} ${name}: ${(error as AutoSslError).code}`);
        continue;
      }
      const after = fs.readFileSync(tree.site, 'latin1');
      expect(linesOutsideTargets(before, after, [name])).toEqual([]);
      await expect(tree.control.test()).resolves.toBeUndefined();
      const again = await runIssueEdits(tree, { names: [name] });
      expect(again).toEqual([]);
      tally.edited.push(`${file} ${name}`);
    }
  });
});
