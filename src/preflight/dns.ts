/**
 * DNS as Let's Encrypt will see it: A and AAAA for each name (CNAME chains followed), CAA up the tree.
 * Every query has a timeout; a name's queries run in parallel.
 */
import dns from 'node:dns';

export interface ResolverOptions {
  /** "host" or "host:port"; empty = the system's resolvers. */
  servers: string[];
  timeoutMs: number;
  /** Ask the zone's authoritative servers instead (no caches in between). */
  authoritative?: boolean;
}

export interface Resolution {
  name: string;
  a: string[];
  aaaa: string[];
  /** The CNAME chain from the name to the final target (empty when none). */
  cnames: string[];
  /** SERVFAIL or TIMEOUT when a query failed outright. */
  failure?: { kind: 'SERVFAIL' | 'TIMEOUT' | 'ERROR'; message: string };
}

export interface CaaResult {
  /** The name whose CAA record set applies (the name itself or the closest parent with records). */
  at?: string;
  allowsLetsEncrypt: boolean;
  issuers: string[];
  failure?: Resolution['failure'];
}

function makeResolver(servers: string[], timeoutMs: number): dns.promises.Resolver {
  const resolver = new dns.promises.Resolver({ timeout: timeoutMs, tries: 1 });
  if (servers.length) resolver.setServers(servers);
  return resolver;
}

function classify(error: unknown): Resolution['failure'] | 'empty' {
  const code = (error as NodeJS.ErrnoException).code;
  if (code === 'ENODATA' || code === 'ENOTFOUND') return 'empty';
  if (code === 'ESERVFAIL') return { kind: 'SERVFAIL', message: (error as Error).message };
  if (code === 'ETIMEOUT' || code === 'ECANCELLED') return { kind: 'TIMEOUT', message: (error as Error).message };
  return { kind: 'ERROR', message: (error as Error).message };
}

/** Rejects after `ms` so that no probe can outlive the configured timeout, whatever the resolver does. */
export function withTimeout<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} timed out after ${ms} ms`), { code: 'ETIMEOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

async function authoritativeServers(name: string, opts: ResolverOptions): Promise<string[]> {
  const resolver = makeResolver(opts.servers, opts.timeoutMs);
  const labels = name.split('.');
  for (let i = 0; i < labels.length - 1; i++) {
    const zone = labels.slice(i).join('.');
    const ns = await withTimeout(resolver.resolveNs(zone), opts.timeoutMs, `NS ${zone}`).catch(() => [] as string[]);
    if (ns.length === 0) continue;
    const addresses = (await Promise.all(ns.map((h) => withTimeout(resolver.resolve4(h), opts.timeoutMs, `A ${h}`).catch(() => [] as string[])))).flat();
    if (addresses.length) return addresses;
  }
  return [];
}

async function resolverFor(name: string, opts: ResolverOptions): Promise<dns.promises.Resolver> {
  if (!opts.authoritative) return makeResolver(opts.servers, opts.timeoutMs);
  const servers = await withTimeout(authoritativeServers(name, opts), opts.timeoutMs, `NS for ${name}`).catch(() => [] as string[]);
  return makeResolver(servers.length ? servers : opts.servers, opts.timeoutMs);
}

export async function resolveName(name: string, opts: ResolverOptions): Promise<Resolution> {
  const result: Resolution = { name, a: [], aaaa: [], cnames: [] };
  let resolver: dns.promises.Resolver;
  try {
    resolver = await resolverFor(name, opts);
  } catch (error) {
    result.failure = { kind: 'ERROR', message: (error as Error).message };
    return result;
  }
  const query = async <T>(what: string, fn: () => Promise<T[]>): Promise<T[]> => {
    try {
      return await withTimeout(fn(), opts.timeoutMs, what);
    } catch (error) {
      const c = classify(error);
      if (c !== 'empty' && !result.failure) result.failure = c;
      return [];
    }
  };
  const followCnames = async (): Promise<string[]> => {
    const chain: string[] = [];
    let current = name;
    for (let hop = 0; hop < 8; hop++) {
      const next = await withTimeout(resolver.resolveCname(current), opts.timeoutMs, `CNAME ${current}`).catch(() => [] as string[]);
      if (!next[0] || chain.includes(next[0])) break;
      chain.push(next[0]);
      current = next[0];
    }
    return chain;
  };
  const [a, aaaa, cnames] = await Promise.all([
    query(`A ${name}`, () => resolver.resolve4(name)),
    query(`AAAA ${name}`, () => resolver.resolve6(name)),
    withTimeout(followCnames(), opts.timeoutMs, `CNAME chain of ${name}`).catch(() => [] as string[]),
  ]);
  result.a = a;
  result.aaaa = aaaa;
  result.cnames = cnames;
  return result;
}

/** RFC 8659: the relevant CAA set is the first non-empty one climbing from the name towards the root. */
export async function checkCaa(name: string, opts: ResolverOptions, caIdentity = 'letsencrypt.org', wildcard = false): Promise<CaaResult> {
  const resolver = await resolverFor(name, opts);
  const labels = name.split('.');
  const candidates = labels.slice(0, -1).map((_, i) => labels.slice(i).join('.'));
  // every level is asked at once, so the whole climb costs one timeout at most
  const answers = await Promise.all(
    candidates.map((c) =>
      withTimeout(resolver.resolveCaa(c), opts.timeoutMs, `CAA ${c}`).then(
        (records) => ({ records }),
        (error: unknown) => ({ error }),
      ),
    ),
  );
  for (const [i, answer] of answers.entries()) {
    if ('error' in answer) {
      const c = classify(answer.error);
      if (c === 'empty') continue;
      return { allowsLetsEncrypt: false, issuers: [], failure: c };
    }
    const records = answer.records;
    if (records.length === 0) continue;
    // RFC 8659 4.3: for a wildcard, issuewild records (when present) take precedence over issue records
    const wild = wildcard ? records.filter((r) => r.issuewild !== undefined).map((r) => r.issuewild!.split(';')[0]!.trim().toLowerCase()) : [];
    const issue = wild.length ? wild : records.filter((r) => r.issue !== undefined).map((r) => r.issue!.split(';')[0]!.trim().toLowerCase());
    if (issue.length === 0) return { at: candidates[i], allowsLetsEncrypt: true, issuers: [] }; // only iodef/issuewild: no limit for this name
    return { at: candidates[i], allowsLetsEncrypt: issue.includes(caIdentity), issuers: issue };
  }
  return { allowsLetsEncrypt: true, issuers: [] };
}

export interface TxtWait {
  /** "host" or "host:port"; empty = the system's resolvers. */
  servers: string[];
  /** The longest one query may take. */
  queryTimeoutMs: number;
  /** How long to wait for the value in all. */
  timeoutMs: number;
  /** The pause between two polls. */
  intervalMs?: number;
}

/**
 * Polls until `fqdn` answers `value` in TXT; resolves to the values it saw last (rejects nothing: the caller
 * decides what a miss means). Every poll asks a NEW resolver: a resolver is one c-ares channel, and the c-ares a
 * distribution links Node with (Debian 13: 1.34.5) keeps its query cache on, so a channel whose first poll missed
 * answers "no such record" from its cache for up to an hour, however soon the record appears.
 */
export async function waitForTxt(fqdn: string, value: string, wait: TxtWait): Promise<{ visible: boolean; seen: string[] }> {
  const deadline = Date.now() + wait.timeoutMs;
  let seen: string[] = [];
  for (;;) {
    try {
      const resolver = makeResolver(wait.servers, Math.min(wait.queryTimeoutMs, 5000));
      seen = (await withTimeout(resolver.resolveTxt(fqdn), wait.queryTimeoutMs, `TXT ${fqdn}`)).map((chunks) => chunks.join(''));
      if (seen.includes(value)) return { visible: true, seen };
    } catch {
      seen = [];
    }
    if (Date.now() >= deadline) return { visible: false, seen };
    await new Promise((r) => setTimeout(r, wait.intervalMs ?? 500));
  }
}
