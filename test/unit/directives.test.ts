/**
 * The `vhost` payload's builder (src/pipeline/directives.ts): what plugins fill instead of an nginx-conf tree. The
 * editor reads it with autossl's own lexer; the old nginx-conf call (`_add`) keeps working, nested locations too.
 */
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { Directives } from '../../src/index.js';
import { newVhostEdit, planHttpsEdit, statementsOf } from '../../src/nginx/edit.js';
import { NginxTree } from '../../src/nginx/tree.js';
import { addHttpsDirectives } from '../../src/stages/vhost-https.js';
import { makeTree } from '../helpers/nginx-fixture.js';

describe('the directive builder', () => {
  it("add, add with words, block: read back as statements, a name's directives together in the order names came", () => {
    const d = new Directives()
      .add('add_header', 'X-A "1" always')
      .add('ssl_protocols', ['TLSv1.2', 'TLSv1.3'])
      .block('location', '= /health', (b) => b.add('return', '204'))
      .add('add_header', 'X-B "2" always');
    expect(statementsOf(d)).toEqual([
      { name: 'add_header', args: ['X-A', '"1"', 'always'] },
      { name: 'add_header', args: ['X-B', '"2"', 'always'] },
      { name: 'ssl_protocols', args: ['TLSv1.2', 'TLSv1.3'] },
      { name: 'location', args: ['=', '/health'], children: [{ name: 'return', args: ['204'] }] },
    ]);
  });

  it('the nginx-conf call of plugins written before keeps working: _add, and a location filled through edit.https.location[0]._add', () => {
    const d = new Directives();
    d._add('add_header', 'X-Old "1" always');
    d._add('location', '/legacy/');
    (d as unknown as { location: Array<{ _add(n: string, v: string): void; _name: string; _value: string }> }).location[0]!._add('return', '204');
    expect(statementsOf(d)).toEqual([
      { name: 'add_header', args: ['X-Old', '"1"', 'always'] },
      { name: 'location', args: ['/legacy/'], children: [{ name: 'return', args: ['204'] }] },
    ]);
    const legacy = (d as unknown as { location: Array<{ _name: string; _value: string }> }).location[0]!;
    expect([legacy._name, legacy._value]).toEqual(['location', '/legacy/']);
  });

  it('a value cannot smuggle a second directive or a block: PLUGIN_ERROR', () => {
    expect(() => statementsOf(new Directives().add('add_header', 'X-A 1; return 200'))).toThrow(expect.objectContaining({ code: 'PLUGIN_ERROR' }));
    expect(() => statementsOf(new Directives().add('add_header', ['X-A', '1 } server {']))).toThrow(expect.objectContaining({ code: 'PLUGIN_ERROR' }));
    expect(() => statementsOf(new Directives().add('bad name', 'on'))).toThrow(expect.objectContaining({ code: 'PLUGIN_ERROR' }));
    expect(() => statementsOf(new Directives().block('location', '/x', (b) => b.add('return', '200 "a\u202Eb"')))).toThrow(
      expect.objectContaining({ code: 'PLUGIN_ERROR' }),
    );
  });

  it('a block built with block() lands in the TLS server once; planning the result again changes nothing', async () => {
    const t = await makeTree('server {\n    listen 80;\n    server_name b.builder.test;\n    root /var/www/b;\n}\n');
    const plan = (tree: NginxTree) => {
      const edit = addHttpsDirectives(
        newVhostEdit(['b.builder.test']),
        { fullchain: path.join(t.live, 'fullchain.pem'), privkey: path.join(t.live, 'privkey.pem') },
        { port: 443, http2: false },
      );
      edit.https.block('location', '= /health', (b) => b.add('return', '204'));
      return planHttpsEdit(tree, edit, { nginxVersion: [1, 22, 1] });
    };
    const first = plan(NginxTree.load(t.main));
    const after = first.edits[0]!.after;
    expect(after).toContain('    location = /health {\n        return 204;\n    }\n');
    expect(after.match(/location = \/health/g)).toHaveLength(1);
    const again = plan(NginxTree.load(t.main, { overlay: new Map([[first.edits[0]!.file, after]]) }));
    expect(again.edits).toEqual([]);
  });
});
