/**
 * Every fixture in fixtures/nginx: the edits `autossl issue` makes give exactly expected.conf; the real
 * `nginx -t` accepts the result; a second run changes nothing; the diff stays inside the target blocks; and
 * reading then printing the unedited file gives back the same bytes.
 * UPDATE_FIXTURES=1 rewrites expected.conf (review the diff before committing it).
 */
import fs from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { parseConfig, printConfig } from '../../src/nginx/parse.js';
import { FIXTURES, loadFixture, runIssueEdits } from '../helpers/nginx-fixture.js';
import { linesOutsideTargets } from '../helpers/confined.js';

const names = fs.readdirSync(FIXTURES).filter((n) => fs.existsSync(path.join(FIXTURES, n, 'site.conf'))).sort();

describe('nginx fixtures', () => {
  it('has at least 25 shapes', () => {
    expect(names.length).toBeGreaterThanOrEqual(25);
  });

  it.each(names)('%s', async (name) => {
    const { tree, fixtureCase, input, expected } = await loadFixture(name);
    const original = fs.readFileSync(tree.site, 'latin1');
    expect(printConfig(parseConfig(original, tree.site))).toBe(original);

    await tree.control.test(); // the input itself is valid
    const edits = await runIssueEdits(tree, fixtureCase);
    expect(edits.length).toBeGreaterThan(0);
    const output = fs.readFileSync(tree.site, 'latin1');
    const portable = output.replaceAll(tree.dir, '{{DIR}}');
    if (process.env.UPDATE_FIXTURES) fs.writeFileSync(path.join(FIXTURES, name, 'expected.conf'), portable, 'latin1');
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
});
