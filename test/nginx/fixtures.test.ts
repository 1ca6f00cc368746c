/**
 * Every fixture in fixtures/nginx: the edits `autossl issue` makes give exactly expected.conf; the real
 * `nginx -t` accepts the result; a second run changes nothing; the diff stays inside the target blocks; and
 * reading then printing the unedited file gives back the same bytes.
 * UPDATE_FIXTURES=1 rewrites the expected file of the nginx that runs (review the diff before committing it).
 * The expected bytes follow nginx's HTTP/2 syntax: expected.conf up to nginx 1.25.0, expected.http2-on.conf
 * (where it differs) from 1.25.1 on, as the editor chooses; the other syntax is printed and compared too, without
 * `nginx -t` (this nginx would refuse it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig } from '../../src/nginx/parse.js';
import { printConfig } from '../../src/nginx/fingerprint.js';
import { expectedFileFor, FIXTURES, loadFixture, runIssueEdits } from '../helpers/nginx-fixture.js';
import { usesHttp2Directive } from '../../src/nginx/edit.js';
import { linesOutsideTargets } from '../helpers/confined.js';

const names = fs
  .readdirSync(FIXTURES)
  .filter((n) => fs.existsSync(path.join(FIXTURES, n, 'site.conf')))
  .sort();

describe('nginx fixtures', () => {
  it('has at least 25 shapes', () => {
    expect(names.length).toBeGreaterThanOrEqual(25);
  });

  it.each(names)('%s', async (name) => {
    const { tree, fixtureCase, input, expected, expectedFile } = await loadFixture(name);
    const original = fs.readFileSync(tree.site, 'latin1');
    expect(printConfig(parseConfig(original, tree.site))).toBe(original);

    await tree.control.test(); // the input itself is valid
    const edits = await runIssueEdits(tree, fixtureCase);
    expect(edits.length).toBeGreaterThan(0);
    const output = fs.readFileSync(tree.site, 'latin1');
    const portable = output.replaceAll(tree.dir, '{{DIR}}');
    if (process.env.UPDATE_FIXTURES) fs.writeFileSync(expectedFile, portable, 'latin1');
    else expect(portable).toBe(expected);

    expect(linesOutsideTargets(original, output, fixtureCase.names)).toEqual([]);
    await expect(tree.control.test()).resolves.toBeUndefined();

    const again = await runIssueEdits(tree, fixtureCase);
    expect(again.map((e) => e.changes)).toEqual([]);
    expect(fs.readFileSync(tree.site, 'latin1')).toBe(output);
    // snippets are never touched
    for (const f of fs.existsSync(path.join(tree.dir, 'snippets')) ? fs.readdirSync(path.join(tree.dir, 'snippets')) : []) {
      expect(fs.readFileSync(path.join(tree.dir, 'snippets', f), 'latin1')).toBe(fs.readFileSync(path.join(FIXTURES, name, 'snippets', f), 'latin1'));
    }
    void input;
  });

  // The syntax of the other nginx generation, from the same editor: both expected files stay true on any machine.
  it.each(names)('%s, as the other nginx HTTP/2 syntax', async (name) => {
    const { tree, fixtureCase } = await loadFixture(name);
    const other: [number, number, number] = usesHttp2Directive(await tree.control.version()) ? [1, 22, 1] : [1, 25, 1];
    await runIssueEdits(tree, fixtureCase, other);
    const portable = fs.readFileSync(tree.site, 'latin1').replaceAll(tree.dir, '{{DIR}}');
    const file = expectedFileFor(path.join(FIXTURES, name), other);
    if (process.env.UPDATE_FIXTURES) {
      const base = path.join(FIXTURES, name, 'expected.conf');
      const newer = path.join(FIXTURES, name, 'expected.http2-on.conf');
      if (usesHttp2Directive(other)) {
        if (fs.readFileSync(base, 'latin1') !== portable) fs.writeFileSync(newer, portable, 'latin1');
        else fs.rmSync(newer, { force: true });
      } else fs.writeFileSync(base, portable, 'latin1');
    } else expect(portable).toBe(fs.readFileSync(file, 'latin1'));
  });
});
