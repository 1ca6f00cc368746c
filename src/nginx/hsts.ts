/** HSTS made per host: the header's value comes from a map that is empty for names the certificate does not cover. */
import type { NewStatement } from './splice.js';
import type { ServerBlock } from './tree.js';
import { valuesOf } from './ensure.js';
import { blockId, hostEntries, mapStatement, type BeforeBlocks } from './host-maps.js';

export const HSTS_HEADER_NAME = 'strict-transport-security';

/** `add_header Strict-Transport-Security ...` made per host: a map gives the header's value for covered names only. */
export function hstsPerHost(statement: NewStatement, target: ServerBlock, certNames: readonly string[], before: BeforeBlocks): NewStatement {
  if (statement.name !== 'add_header' || (valuesOf(statement.args.slice(0, 1))[0] ?? '').toLowerCase() !== HSTS_HEADER_NAME) return statement;
  const value = statement.args[1];
  if (value === undefined) return statement;
  const variable = `$autossl_hsts_${blockId(target)}`;
  before.add(target, mapStatement('$host', variable, [['default', '""'], ...hostEntries(certNames, value)]));
  return { ...statement, args: [statement.args[0]!, variable, ...statement.args.slice(2)] };
}
