/** Domain values that must never reach a file, a config line or a subprocess (each refused with DOMAIN_INVALID). */
export const HOSTILE_DOMAINS = [
  'a.com;',
  'a.com\n}',
  'a.com{',
  '../x',
  '-a.com',
  `${'a'.repeat(250)}.com`,
  `${'b'.repeat(64)}.com`,
  '$host',
  'a b',
  'a\u0000.com',
  '`id`.a.com',
  '',
  'com',
  'a..com',
  '*.a.com',
  '1.2.3.4',
  'ex\u00e4mple.com',
];

/**
 * Characters whose low byte is nginx syntax (U+0122 `"`, U+013B `;`, U+017D `}`, U+0120 space, U+012F `/`, U+0124 `$`,
 * U+010A newline, U+017B `{`, U+0123 `#`), fullwidth forms (ａｄｍｉｎ became ADMIN), bidi controls (U+202E, U+2066,
 * U+2069), zero-width and separator characters, a lone surrogate: values built from them must be refused or written
 * exactly (issue 19).
 */
export const HOSTILE_UNICODE = [
  '\u0122',
  '\u013b',
  '\u017d',
  '\u0120',
  '\u012f',
  '\u0124',
  '\u010a',
  '\u017b',
  '\u0123',
  '\uff41\uff44\uff4d\uff49\uff4e',
  '\uff1b',
  '\u202e',
  '\u2066',
  '\u2069',
  '\u200b',
  '\u2028',
  '\u00a0',
  '\u3000',
  '\ud800',
  '\u00e9',
  'caf\u00e9',
];

/** Letters that pass \p{L} and whose low bytes (a latin1 write kept only those) are `"/home/x";}location /leak{`. */
export const LOW_BYTE_INJECTION =
  '\u0122\u012f\u0168\u016f\u016d\u0165\u012f\u0178\u0122\u013b\u017d\u016c\u016f\u0163\u0161\u0174\u0169\u016f\u016e\u0120\u012f\u016c\u0165\u0161\u016b\u017b';

/** Agent user names that must be refused (400, AGENT_BAD_REQUEST): the Unix useradd rule is ASCII [a-z_][a-z0-9_-]*, at most 32. */
export const HOSTILE_USERNAMES = [
  '../../etc',
  'root;id',
  'a/b',
  'a b',
  'a\n',
  'x'.repeat(33),
  '$(id)',
  '.',
  'a.b',
  'Alice',
  '2shop',
  '-a',
  LOW_BYTE_INJECTION,
  '\uff41\uff44\uff4d\uff49\uff4e',
  'adm\u202ein',
  'a\u2066b',
  '\u00e9t\u00e9',
  'a\u200bb',
];

/**
 * Server blocks that answer more names than they list (wildcard, regex, leading-dot, catch-all), each with the names
 * of the certificate the block serves now and the name issued next: the run either orders one certificate that
 * keeps covering what the block served covered (`names`, in order), or is refused before any order (`code`).
 */
export interface HostileBlock {
  /** The block's server_name and listen lines. */
  block: string;
  served: string[];
  issue: string;
  expect: { names: string[] } | { code: string };
}
const tlsBlock = (serverName: string, listen = 'listen 80;\n    listen 443 ssl;'): string => `${listen}\n    server_name ${serverName};`;
export const HOSTILE_BLOCKS: HostileBlock[] = [
  { block: tlsBlock('*.wild.test'), served: ['a.wild.test'], issue: 'b.wild.test', expect: { names: ['b.wild.test', 'a.wild.test'] } },
  {
    block: tlsBlock('*.wild.test'),
    served: ['a.wild.test', 'b.wild.test'],
    issue: 'c.wild.test',
    expect: { names: ['c.wild.test', 'a.wild.test', 'b.wild.test'] },
  },
  { block: tlsBlock('*.wild.test'), served: ['a.wild.test', 'b.wild.test'], issue: 'a.wild.test', expect: { names: ['a.wild.test', 'b.wild.test'] } },
  { block: tlsBlock('~^(?<sub>.+)\\.rx\\.test$'), served: ['a.rx.test'], issue: 'b.rx.test', expect: { names: ['b.rx.test', 'a.rx.test'] } },
  { block: tlsBlock('"~^(?<sub>[a-z]+)\\.rq\\.test$"'), served: ['a.rq.test'], issue: 'b.rq.test', expect: { names: ['b.rq.test', 'a.rq.test'] } },
  { block: tlsBlock('.dot.test'), served: ['a.dot.test'], issue: 'dot.test', expect: { names: ['dot.test', 'a.dot.test'] } },
  { block: tlsBlock('www.pre.*'), served: ['www.pre.test'], issue: 'www.pre.org', expect: { names: ['www.pre.org', 'www.pre.test'] } },
  { block: tlsBlock('sb.test *.mix.test'), served: ['a.mix.test'], issue: 'sb.test', expect: { names: ['sb.test', 'a.mix.test'] } },
  // a wildcard certificate on a wildcard (or regex) block: only a wildcard keeps every name covered (DNS-01)
  { block: tlsBlock('*.wild.test'), served: ['*.wild.test'], issue: 'b.wild.test', expect: { code: 'VHOST_CERT_CONFLICT' } },
  { block: tlsBlock('~^(.+)\\.rw\\.test$'), served: ['*.rw.test'], issue: 'b.rw.test', expect: { code: 'VHOST_CERT_CONFLICT' } },
  { block: tlsBlock('.dw.test'), served: ['dw.test', '*.dw.test'], issue: 'dw.test', expect: { code: 'VHOST_CERT_CONFLICT' } },
  // an exact name served covered: the existing rule (aliases, blockNames "cover" or a block of its own)
  { block: tlsBlock('sb.test other.test'), served: ['sb.test'], issue: 'other.test', expect: { code: 'VHOST_CERT_CONFLICT' } },
  // a catch-all answers names no server_name lists: nothing to edit for them, refused before any order
  {
    block: tlsBlock('_', 'listen 80 default_server;\n    listen 443 ssl default_server;'),
    served: ['a.catch.test'],
    issue: 'b.catch.test',
    expect: { code: 'VHOST_NOT_FOUND' },
  },
];
