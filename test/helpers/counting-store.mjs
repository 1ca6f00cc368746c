/**
 * A Store for tests, plugged in through the config (`store: { module: "<this file>", options: { countsFile } }`):
 * it wraps the built-in SQLite store (StoreContext.sqlite) and appends one line per call, "<table>.<method>" (and
 * "locker.lock <key>"), to `countsFile`. A file, not memory: the CLI and certbot's hooks are processes of their own.
 * `options.delays` makes chosen methods answer later (a store over a network), for races.
 * Plain JavaScript so node loads it as it loads any store module (no build step), typed by JSDoc.
 */
import fs from 'node:fs';

const TABLES = ['jobs', 'attempts', 'certificates', 'sites', 'outbox', 'undo', 'replay', 'rateLimits', 'renewRuns', 'dnsProgress', 'ariWindows', 'backoff'];

/** @type {import('../../src/store/store.js').StoreFactory} */
export default function countingStore({ options, sqlite }) {
  const countsFile = String(options.countsFile);
  /** { "<table>.<method>": ms }: those calls answer that much later, to open the windows two processes race in. */
  const delays = options.delays ?? {};
  const count = (line) => fs.appendFileSync(countsFile, `${line}\n`);
  const inner = sqlite();
  /** Every method of a table, counted, then run by the SQLite store. */
  const counted = (table, name) =>
    new Proxy(table, {
      get(target, key) {
        const value = Reflect.get(target, key);
        if (typeof value !== 'function') return value;
        const delayMs = delays[`${name}.${String(key)}`];
        return (...args) => {
          count(`${name}.${String(key)}`);
          const result = value.apply(target, args);
          // a slow store (a database over a network): the answer arrives later, the work is done now
          return delayMs ? result.then((r) => new Promise((resolve) => setTimeout(() => resolve(r), delayMs))) : result;
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
