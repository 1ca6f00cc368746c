/** Domain values that must never reach a file, a config line or a subprocess (each refused with DOMAIN_INVALID). */
export const HOSTILE_DOMAINS = ['a.com;', 'a.com\n}', 'a.com{', '../x', '-a.com', `${'a'.repeat(250)}.com`, `${'b'.repeat(64)}.com`, '$host', 'a b', 'a\u0000.com', '`id`.a.com', '', 'com', 'a..com', '*.a.com', '1.2.3.4', 'ex\u00e4mple.com'];
