/**
 * Bugs the editor fuzz found in the splicer (scripts/fuzz/syntax.ts), each reduced to its smallest input. Each
 * test failed before its fix.
 */
import { describe, expect, it } from 'vitest';
import { parseConfig, type Directive } from '../../src/nginx/parse.js';
import { insertBlockAfter, removeStatement, replaceArgs, spliceAndVerify } from '../../src/nginx/splice.js';
import { makeTree } from '../helpers/nginx-fixture.js';
import fs from 'node:fs';

const first = (src: string, i = 0): { config: ReturnType<typeof parseConfig>; d: Directive } => {
  const config = parseConfig(src, 'r.conf');
  return { config, d: config.children.filter((n): n is Directive => n.kind === 'directive')[i]! };
};

describe('splicer regressions found by the fuzz', () => {
  it('replaceArgs with no arguments on a directive without any is no change (it added a space each run)', () => {
    const { config, d } = first('listen;\n');
    const once = spliceAndVerify(config, [replaceArgs(d, [], 'none')]);
    expect(once).toBe('listen;\n');
  });

  it('an argument change never swallows a comment written between the arguments', () => {
    // the comment's offset equals where the next statement lands after the edit: position-keyed checks missed it
    const { config, d } = first('set $a #why\n    1;listen 80;\n');
    expect(() => spliceAndVerify(config, [replaceArgs(d, ['$b'], 'args')])).toThrow(expect.objectContaining({ code: 'VHOST_EDIT_UNSAFE' }));
  });

  it('an argument change on a block written as name{ (no space) is accepted', () => {
    const { config, d } = first('events{\n}\n');
    expect(spliceAndVerify(config, [replaceArgs(d, ['x'], 'args')])).toBe('events x{\n}\n');
  });

  it('arguments ending in $ before a { get a space, so nginx does not read ${ as a variable', () => {
    const { config, d } = first('location{\n}\n');
    expect(spliceAndVerify(config, [replaceArgs(d, ['~', '^/a$'], 'args')])).toBe('location ~ ^/a$ {\n}\n');
  });

  it('adding an argument keeps a comment written between the existing ones (the planners refused such a listen)', () => {
    const { config, d } = first('listen 80 # main site\n    default_server;\n');
    expect(spliceAndVerify(config, [replaceArgs(d, ['80', 'default_server', 'ssl'], 'add ssl')])).toBe('listen 80 # main site\n    default_server ssl;\n');
    // and changing only the first keeps the rest as written
    const again = first('listen 80 # main site\n    default_server;\n');
    expect(spliceAndVerify(again.config, [replaceArgs(again.d, ['443', 'default_server'], 'port')])).toBe('listen 443 # main site\n    default_server;\n');
  });

  it('insertBlockAfter puts the block after its anchor, not inside a block that opens later on the same line', async () => {
    const site = 'server { listen 127.0.0.1:80; server_name a.test; } server {\n    listen 127.0.0.1:80;\n    server_name b.test;\n}\n';
    const { config, d } = first(site);
    const block = {
      name: 'server',
      args: [],
      children: [
        { name: 'listen', args: ['127.0.0.1:8080'] },
        { name: 'server_name', args: ['a.test'] },
      ],
    };
    const after = spliceAndVerify(config, [insertBlockAfter(config, d, [block], 'redirect block')]);
    expect(after).toBe(
      'server { listen 127.0.0.1:80; server_name a.test; }\n\nserver {\n    listen 127.0.0.1:8080;\n    server_name a.test;\n}\nserver {\n    listen 127.0.0.1:80;\n    server_name b.test;\n}\n',
    );
    const t = await makeTree(site);
    fs.writeFileSync(t.site, after);
    await expect(t.control.test()).resolves.toBeUndefined(); // a server inside a server: nginx -t failed
  });

  it("insertBlockAfter beside the removal of a statement that starts on the anchor's line is not an INTERNAL overlap", () => {
    const { config } = first('listen 1;\nlisten 2; listen\n 3;\n');
    const [, b, c] = config.children.filter((n): n is Directive => n.kind === 'directive');
    const block = { name: 'server', args: [], children: [{ name: 'listen', args: ['4'] }] };
    expect(spliceAndVerify(config, [insertBlockAfter(config, b!, [block], 'block'), removeStatement(config, c!, 'remove')])).toBe(
      'listen 1;\nlisten 2;\n\nserver {\n    listen 4;\n}\n\n',
    );
  });
});
