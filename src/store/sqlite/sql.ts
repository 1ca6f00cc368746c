/** The one connection every table of the SQLite store shares, with its statements prepared once. */
import type Database from 'better-sqlite3';

export class Sql {
  private readonly statements = new Map<string, Database.Statement>();

  constructor(readonly db: Database.Database) {}

  /** Prepared once per store: thousands of rows in a scan reuse the same statement. */
  st(text: string): Database.Statement {
    let st = this.statements.get(text);
    if (!st) {
      st = this.db.prepare(text);
      this.statements.set(text, st);
    }
    return st;
  }

  /** One IMMEDIATE transaction: takes the write lock first, so two processes never deadlock upgrading a read. */
  tx<T>(fn: () => T): T {
    return this.db.transaction(fn).immediate();
  }
}
