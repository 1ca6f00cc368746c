/**
 * docs/configuration.md, written from the schema of keys.ts (scripts/config-docs.ts writes it; a test fails while
 * the committed file differs): one row per key with its type, default and meaning.
 */
import type { TSchema } from '@sinclair/typebox';
import { ConfigSchema, annotations } from './keys.js';
import { FORMATS } from './formats.js';

type Node = TSchema & { properties?: Record<string, Node>; items?: Node | Node[]; required?: string[]; anyOf?: Node[] };

const cell = (text: string): string => text.replaceAll('|', '\\|').replaceAll('\n', ' ');

function typeOf(s: Node): string {
  if (Array.isArray(s.enum))
    return `${s.enum.length > 2 ? 'one of ' : ''}${s.enum.map((v) => `\`${JSON.stringify(v)}\``).join(s.enum.length > 2 ? ', ' : ' or ')}`;
  if (s.anyOf) return (annotations(s).expected ?? 'see meaning').replace(/^an? /, '');
  switch (s.type) {
    case 'integer':
      return `integer ${s.minimum}–${s.maximum}`;
    case 'number':
      return `number, ${s.exclusiveMinimum ?? s.minimum} < x < ${s.exclusiveMaximum ?? s.maximum}`;
    case 'boolean':
      return 'boolean';
    case 'array':
      return `list of ${Array.isArray(s.items) || !s.items ? 'values' : typeOf(s.items)}${s.minItems ? ` (at least ${s.minItems})` : ''}`;
    case 'object':
      return s.patternProperties ? 'object of strings' : 'object';
    default: {
      const kind = annotations(s).pathKind;
      if (kind) return kind === 'command' ? 'command' : 'path';
      if (typeof s.format === 'string' && s.format !== 'text') return FORMATS[s.format]!.expected.replace(/^an? /, '');
      return 'string';
    }
  }
}

function defaultOf(s: Node, required: boolean): string {
  const a = annotations(s);
  if (a.defaultText) return `\`${a.defaultText}\``;
  if (s.default !== undefined) return `\`${JSON.stringify(s.default)}\``;
  return required ? '(required)' : '(none)';
}

function rows(schema: Node, prefix: string, out: string[]): void {
  for (const [key, s] of Object.entries(schema.properties ?? {})) {
    const name = prefix ? `${prefix}.${key}` : key;
    if (s.type === 'object' && s.properties) {
      out.push(`| **\`${name}\`** | | | ${cell(s.description ?? '')} |`);
      rows(s, name, out);
      continue;
    }
    const item = !Array.isArray(s.items) ? s.items : undefined;
    if (s.type === 'array' && item?.type === 'object' && item.properties) {
      out.push(`| **\`${name}[]\`** | list | \`[]\` | ${cell(s.description ?? '')} |`);
      rows(item, `${name}[]`, out);
      continue;
    }
    // (a format's words are in the type column already)
    const described = (n: Node | undefined) => (n && !(typeof n.format === 'string' && n.format !== 'text') ? annotations(n).expected : undefined);
    const expected = s.anyOf ? undefined : (described(s) ?? described(item));
    const meaning = [s.description, expected && !s.description?.includes(expected) ? `Takes ${expected}.` : ''].filter(Boolean).join(' ');
    out.push(
      `| \`${name}\` | ${cell(typeOf(s))} | ${cell(defaultOf(s, schema.required?.includes(key) === true && s.default === undefined))} | ${cell(meaning)} |`,
    );
  }
}

/** The whole of docs/configuration.md. */
export function configurationDoc(): string {
  const out = [
    '# Configuration',
    '',
    '<!-- Generated from src/config/keys.ts by `npm run docs:config`; edit the schema, not this file. -->',
    '',
    'Found by cosmiconfig (module name `autossl`): `autossl.config.{json,yaml,yml,js,mjs,cjs,ts}`, `.autosslrc*`,',
    '`package.json#autossl`, from the working directory upwards, then in `/etc/autossl/`; `--config FILE` overrides.',
    'Paths are relative to the config file. Unknown keys and bad values are refused with CONFIG_INVALID naming the key',
    '(`autossl.config.json: "certbot.keyType" must be "ecdsa" or "rsa", got "dsa"`). Every key is optional unless it says',
    '"(required)"; a section left out takes all its defaults.',
    '',
    '| key | type | default | meaning |',
    '|---|---|---|---|',
  ];
  rows(ConfigSchema as Node, '', out);
  return out.join('\n') + '\n';
}
