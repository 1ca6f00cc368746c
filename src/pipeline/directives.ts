/**
 * The typed builder plugins fill on the `vhost` hook (`edit.https`, `edit.http`): the directives and blocks to
 * ensure in a server block. It is the project's own (the payload was an nginx-conf tree read back through that
 * library's private fields): the editor reads it with autossl's own lexer, so a value cannot smuggle `;` or `}`,
 * and decides placement and "already there" (see "Writing a plugin" in the README).
 *
 *     edit.https.add('add_header', 'X-Served-By "web-1" always');
 *     edit.https.add('ssl_protocols', ['TLSv1.2', 'TLSv1.3']);
 *     edit.https.block('location', '= /health', (b) => b.add('return', '204'));
 */

/** One directive to ensure. */
export interface DirectiveEntry {
  readonly name: string;
  /** Its arguments as nginx text (`X-Served-By "web-1" always`); '' for none. */
  readonly value: string;
  /** The directives inside, for a block (`location /x { ... }`); undefined for a simple directive. */
  readonly block: Directives | undefined;
}

/** Words given as an array are one nginx word each, written as given (quote one yourself if it needs quotes). */
type Value = string | readonly string[];

const textOf = (value: Value | undefined): string =>
  value === undefined || value === null ? '' : typeof value === 'string' ? value : Array.isArray(value) ? value.join(' ') : String(value);

export class Directives {
  readonly #entries: Array<{ name: string; value: string; inner: Directives; isBlock: boolean }> = [];

  /** Adds `name value;`. Returns this, to chain. */
  add(name: string, value: Value = ''): this {
    this.#entries.push({ name, value: textOf(value), inner: new Directives(), isBlock: false });
    return this;
  }

  /** Adds `name value { ... }`; `fill` adds the directives inside. Returns this (not the block), to chain. */
  block(name: string, value: Value, fill?: (inner: Directives) => void): this {
    const inner = new Directives();
    this.#entries.push({ name, value: textOf(value), inner, isBlock: true });
    fill?.(inner);
    return this;
  }

  /**
   * What was added, grouped by name in the order each name first came (the order nginx-conf kept, which the
   * editor's placement follows). A `location`, or an entry given directives, is a block.
   */
  list(): DirectiveEntry[] {
    const names: string[] = [];
    for (const e of this.#entries) if (!names.includes(e.name)) names.push(e.name);
    return names.flatMap((n) =>
      this.#entries
        .filter((e) => e.name === n)
        .map((e) => ({ name: e.name, value: e.value, block: e.isBlock || e.name === 'location' || e.inner.#entries.length > 0 ? e.inner : undefined })),
    );
  }

  /**
   * nginx-conf's call, from when the payload was an nginx-conf tree: plugins written for it keep working. Same as
   * add(); the entry is also reachable as `edit.https[name][i]` with its own `_add` (a location's directives).
   * @deprecated use add() and block().
   */
  _add(name: string, value?: string): void {
    const inner = new Directives();
    this.#entries.push({ name, value: textOf(value), inner, isBlock: false });
    if (name in Directives.prototype || name.startsWith('_')) return;
    const self = this as unknown as Record<string, unknown[]>;
    (self[name] ??= []).push(Object.assign(inner, { _name: name, _value: value }));
  }
}
