/**
 * PostgreSQL connection strings autossl reads: libpq's unix-socket form with a user and no host
 * (`postgresql://user:pw@/db?host=/dir&port=N`, what a fleet node in another network namespace uses to reach a
 * database on its host) is a valid store, and no message built from a connection string carries its password.
 */
import { describe, expect, it } from 'vitest';
import { parsePgUrl, passwordOf, redact } from '../../src/store/postgres/db.js';

const SOCKET = 'postgresql://autossl:pw-S3cret%21@/fleet?host=%2Ftmp%2Fpg%20x%2Fsockets&port=5555';

describe('PostgreSQL connection strings', () => {
  it("libpq's socket form (user, no host, ?host=DIR) parses; its password is found and never shown", () => {
    const parsed = parsePgUrl(SOCKET)!;
    expect(parsed.socket).toBe(true);
    expect(parsed.url.searchParams.get('host')).toBe('/tmp/pg x/sockets');
    expect(parsed.url.pathname).toBe('/fleet');
    expect(passwordOf(SOCKET)).toBe('pw-S3cret!');
    const shown = redact(SOCKET);
    expect(shown).not.toContain('S3cret');
    expect(shown).not.toContain('invalid'); // the placeholder host stays internal
    expect(shown).toBe('postgresql://autossl@/fleet?host=%2Ftmp%2Fpg%20x%2Fsockets&port=5555');
    expect(redact('postgres://u@/db?host=/run/postgresql')).toBe('postgres://u@/db?host=/run/postgresql');
  });

  it('the TCP form and key=value form as before; a password in the query is masked', () => {
    expect(parsePgUrl('postgresql://a:b@127.0.0.1:5432/db')!.socket).toBe(false);
    expect(redact('postgresql://a:secretpw@127.0.0.1:5432/db')).toBe('postgresql://a@127.0.0.1:5432/db');
    expect(redact('postgresql://a@h/db?password=secretpw')).not.toContain('secretpw');
    expect(redact('host=/tmp user=a password=secretpw dbname=x')).not.toContain('secretpw');
    expect(passwordOf('host=/tmp user=a password=secretpw')).toBe('secretpw');
    expect(parsePgUrl('not a url')).toBeNull();
    expect(parsePgUrl('postgresql://a:b@/db@x')).not.toBeNull(); // WHATWG reads the last @ as the end of the user part
  });
});
