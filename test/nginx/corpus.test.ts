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
import { parseConfig, walkDirectives, argValues } from '../../src/nginx/parse.js';
import { printConfig } from '../../src/nginx/fingerprint.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree, runIssueEdits, testCertificate } from '../helpers/nginx-fixture.js';
import { linesOutsideTargets } from '../helpers/confined.js';

const corpus = process.env.AUTOSSL_CORPUS ?? ['../shared/nginx-corpus', '/work/shared/nginx-corpus'].map((p) => path.resolve(p)).find((p) => fs.existsSync(p));
const files =
  corpus && fs.existsSync(corpus)
    ? fs
        .readdirSync(corpus)
        .filter((f) => f.endsWith('.conf'))
        .sort()
    : [];

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

/**
 * What the corpus files need from the rest of their original trees (a log format, an upstream, a map, a
 * certificate at an absolute path) is stubbed from nginx's own complaints, a few rounds at most. Definitions go
 * into a separate file; absolute certificate paths are pointed at test certificates in the copy (never /etc).
 */
async function stubUntilAccepted(tree: Awaited<ReturnType<typeof makeTree>>, file: string): Promise<boolean> {
  const stubs = path.join(tree.dir, 'sites', '000-stubs.conf');
  const { cert, key } = await testCertificate();
  for (let round = 0; round < 8; round++) {
    const error = await tree.control.test().then(
      () => null,
      (e: Error) => e.message,
    );
    if (error === null) return true;
    let m: RegExpExecArray | null;
    if ((m = /unknown log format "([^"]+)"/.exec(error))) fs.appendFileSync(stubs, `log_format ${m[1]} '$remote_addr';\n`);
    else if ((m = /(?:no port in|host not found in) upstream "([^":]+)/.exec(error))) fs.appendFileSync(stubs, `upstream ${m[1]} { server 127.0.0.1:9; }\n`);
    else if ((m = /unknown "([a-z_0-9]+)" variable/.exec(error))) fs.appendFileSync(stubs, `map $host $${m[1]} { default ""; }\n`);
    else if ((m = /cannot load certificate(?: key)? "(\/[^"]+)"/.exec(error))) {
      const isKey = /certificate key/.test(error);
      const stub = path.join(tree.dir, 'stub-certs', `${round}.pem`);
      fs.mkdirSync(path.dirname(stub), { recursive: true });
      fs.copyFileSync(isKey ? key : cert, stub);
      fs.writeFileSync(tree.site, fs.readFileSync(tree.site, 'latin1').replaceAll(m[1]!, stub), 'latin1');
    } else if ((m = /open\(\) "(\/[^"]+)" failed/.exec(error))) {
      const stub = path.join(tree.dir, 'stub-logs', `${round}.log`);
      fs.mkdirSync(path.dirname(stub), { recursive: true });
      fs.writeFileSync(tree.site, fs.readFileSync(tree.site, 'latin1').replaceAll(m[1]!, stub), 'latin1');
    } else if (/no "ssl_certificate" is defined/.test(error)) {
      // the original tree sets them in an included TLS snippet: the http level stands in for it
      fs.appendFileSync(stubs, `ssl_certificate ${cert};\nssl_certificate_key ${key};\n`);
    } else {
      if (process.env.CORPUS_DEBUG) console.log('REJECT', file, error);
      return false;
    }
  }
  return false;
}

describe('nginx corpus', () => {
  afterAll(() => {
    console.log(
      `corpus: ${tally.edited.length} names edited, ${tally.refused.length} refused (${tally.refused.join('; ')}), ${tally.rejectedByNginx.length} files nginx -t rejects as given`,
    );
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
    const accepted = await stubUntilAccepted(tree, file);
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

  // runs after every file above: an editor that refused everything with a typed error would otherwise pass
  it('edits at least as many names as it did (35 of the 37 candidate names of the shared corpus)', () => {
    expect(tally.edited.length + tally.refused.length).toBeGreaterThanOrEqual(37);
    expect(tally.edited.length).toBeGreaterThanOrEqual(35);
  });
});
