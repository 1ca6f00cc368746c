/**
 * A Store for tests, plugged in through the config (`store: { module: "<this file>", options: { countsFile } }`):
 * it wraps the built-in SQLite store (StoreContext.sqlite) and appends one line per call, "<table>.<method>" (and
 * "locker.lock <key>"), to `countsFile`. A file, not memory: the CLI and certbot's hooks are processes of their own.
 * Plain JavaScript so node loads it as it loads any store module (no build step), typed by JSDoc.
 */
import fs from 'node:fs';

const TABLES = ['jobs', 'attempts', 'certificates', 'sites', 'outbox', 'undo', 'replay', 'rateLimits', 'renewRuns', 'dnsProgress'];

/** @type {import('../../src/store/store.js').StoreFactory} */
export default function countingStore({ options, sqlite }) {
  const countsFile = String(options.countsFile);
  const count = (line) => fs.appendFileSync(countsFile, `${line}\n`);
  const inner = sqlite();
  /** Every method of a table, counted, then run by the SQLite store. */
  const counted = (table, name) =>
    new Proxy(table, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (typeof value !== 'function') return value;
        return (...args) => {
          count(`${name}.${String(key)}`);
          return value.apply(target, args);
        };
      },
    });
  /** @type {import('../../src/store/store.js').Store} */
  const store = {
    kind: 'counting',
    location: inner.location,
    readOnly: inner.readOnly,
    locker: {
      lock(key, ttlMs, what) {
        count(`locker.lock ${key}`);
        return inner.locker.lock(key, ttlMs, what);
      },
    },
    close: () => inner.close(),
  };
  for (const t of TABLES) store[t] = counted(inner[t], t);
  return store;
}
