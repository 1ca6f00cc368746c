import { describe, expect, it } from 'vitest';
import { argValues, parseConfig, walkDirectives } from '../../src/nginx/parse.js';
import { printConfig } from '../../src/nginx/fingerprint.js';

const names = (src: string) => [...walkDirectives(parseConfig(src).children)].map((d) => d.name);

describe('nginx lexer (ngx_conf_read_token rules)', () => {
  it('reads a comment after one space or tab as a comment, never as a directive', () => {
    const src = 'server {\n\tlisten 80; #x {\n\t#location / {\n\troot /a;\n}\n';
    expect(names(src)).toEqual(['server', 'listen', 'root']);
    expect(printConfig(parseConfig(src))).toBe(src);
  });

  it('keeps # inside a word, and } inside a word, as nginx does', () => {
    const [d] = [...walkDirectives(parseConfig('set $a foo#bar}baz;').children)];
    expect(argValues(d!)).toEqual(['$a', 'foo#bar}baz']);
  });

  it('handles quotes, escapes and ${var}', () => {
    const [d] = [...walkDirectives(parseConfig('add_header X "a;{}\\"b" \'c d\' ${host}x\\ y;').children)];
    // nginx keeps the backslash of an escape it does not know (\ followed by a space)
    expect(argValues(d!)).toEqual(['X', 'a;{}"b', 'c d', '${host}x\\ y']);
  });

  it('reads Lua bodies with Lua strings and comments', () => {
    const src = 'content_by_lua_block {\n  local s = "}" -- }\n  local t = [==[ } ]==]\n}\nlisten 80;\n';
    expect(names(src)).toEqual(['content_by_lua_block', 'listen']);
  });

  it.each([
    ['server {', /unexpected end of file, expecting "}"/],
    ['}', /unexpected "}"/],
    ['listen 80', /unexpected end of file/],
    ['a "b"c;', /after a quoted string/],
    [';', /unexpected ";"/],
  ])('refuses %j with NGINX_PARSE_ERROR and file:line:column', (src, message) => {
    expect(() => parseConfig(src, 'x.conf')).toThrow(
      expect.objectContaining({ code: 'NGINX_PARSE_ERROR', message: expect.stringMatching(/^x\.conf:\d+:\d+: /) }),
    );
    expect(() => parseConfig(src, 'x.conf')).toThrow(message);
  });

  it('prints CRLF and odd bytes back unchanged', () => {
    const src = 'server {\r\n  # \u00e9\u00ff comment\r\n  listen 80;\r\n}\r\n';
    expect(printConfig(parseConfig(src))).toBe(src);
    expect(parseConfig(src).eol).toBe('\r\n');
  });
});
