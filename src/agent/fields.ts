/**
 * The fields a panel sends, as TypeBox schemas: the routes' body schemas (fastify's Ajv checks them, the OpenAPI
 * document shows them) and the hand validators of input.ts (which also normalise: punycode, trimming) share these.
 */
import { Type } from '@sinclair/typebox';

export const Domain = Type.String({
  minLength: 1,
  maxLength: 300,
  description: 'A domain as the panel stores it: trimmed, lower-cased and converted to punycode by the agent.',
});

/**
 * An account name as the panel's own `useradd` creates it (the Unix rule, NAME_REGEX of adduser.conf and useradd's
 * default): ASCII, `[a-z_][a-z0-9_-]*`, at most 32; "" is "not given" (recheck sends it).
 */
export const Username = Type.String({
  maxLength: 32,
  pattern: '^(?:[a-z_][a-z0-9_-]{0,31})?$',
  description:
    'The hosting account (a Unix user name: ASCII lower-case letters, digits, "_" and "-", starting with a letter or "_", at most 32); fills {username} in agent.documentRoot. Empty means not given.',
});

export const Email = Type.String({
  maxLength: 254,
  pattern: '^[^\\u0000-\\u001f\\u007f]*$',
  description: 'Checked for shape only (no control characters); the ACME account address is certbot.email in the config.',
});
