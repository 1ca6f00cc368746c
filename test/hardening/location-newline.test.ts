/**
 * Issue 12, defect 8(b): a quoted location path holding a newline (`location "/a\n b" { }`, which nginx accepts)
 * crashed the challenge stage with a TypeError (INTERNAL, or PLUGIN_ERROR when a plugin's tap was blamed): the
 * location parser's `.` did not match the newline. Now it is a location like any other.
 */
import fs from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseConfig, walkDirectives } from '../../src/nginx/parse.js';
import { parseLocation } from '../../src/nginx/routing.js';
import { makeTree, runIssueEdits } from '../helpers/nginx-fixture.js';

const SITE = (location: string) => `server {
    listen 80;
    server_name nl.test;
    root {{DIR}}/www;
    location ${location} {
        return 404;
    }
}
`;

describe('a quoted location path with a newline', () => {
  it.each([['"/a\n b"'], ["'/.well-known/acme-challenge/\n'"], ['~ "^/x\ny$"'], ['"=/exact\n"']])(
    '%j: challenge and HTTPS edits plan, nginx -t accepts the result, the location is kept',
    async (location) => {
      const t = await makeTree(SITE(location));
      await expect(t.control.test()).resolves.toBeUndefined(); // nginx accepts the input
      const edits = await runIssueEdits(t, { names: ['nl.test'], redirect: true });
      expect(edits.length).toBeGreaterThan(0);
      const after = fs.readFileSync(t.site, 'latin1');
      expect(after).toContain(`location ${location} {\n        return 404;\n    }`);
      await expect(t.control.test()).resolves.toBeUndefined();
    },
  );

  it('parseLocation reads the modifier and the whole path across the newline', () => {
    const [d] = [...walkDirectives(parseConfig('location "~*/a\n b" { }').children)];
    expect(parseLocation(d!)).toMatchObject({ modifier: '~*', path: '/a\n b' });
  });
});
