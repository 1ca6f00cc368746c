/**
 * Listen mirroring: the `listen ... ssl` lines a port-80 block gets when TLS is added to it, one per port-80 address
 * (IPv6 included), carrying per-socket options only where nginx allows them.
 */
import { isPlainHttp, listenAddress, optionName, parseListen, SOCKET_OPTIONS, type Listen } from './listen.js';
import type { NewStatement } from './splice.js';
import type { NginxTree, ServerBlock } from './tree.js';

function versionAtLeast(v: [number, number, number], want: [number, number, number]): boolean {
  for (let i = 0; i < 3; i++) if (v[i]! !== want[i]!) return v[i]! > want[i]!;
  return true;
}

/** nginx 1.25.1 made `listen ... http2` obsolete: HTTP/2 is then `http2 on;` in the server block. */
export function usesHttp2Directive(nginxVersion: [number, number, number]): boolean {
  return versionAtLeast(nginxVersion, [1, 25, 1]);
}

/**
 * Listens added by this plan, per socket: nginx allows `default_server` and the socket options once per
 * address:port across the whole config, so one added for one block takes the socket for the next.
 */
export type PlannedListens = Map<string, string[]>;

/** Is any listen on this socket, anywhere in the tree or added earlier in this plan, carrying a socket option / default_server? */
function socketTaken(tree: NginxTree, planned: PlannedListens, socket: string, what: 'socket' | 'default'): boolean {
  const has = (options: readonly string[]): boolean =>
    options.some((o) => (what === 'default' ? o === 'default_server' || o === 'default' : SOCKET_OPTIONS.includes(optionName(o))));
  return (tree.listensBySocket.get(socket) ?? []).some((l) => has(l.options)) || has(planned.get(socket) ?? []);
}

/** The `listen ... ssl` lines a plain-HTTP block needs, mirroring its own port-80 addresses (IPv6 included). */
export function mirrorListens(
  tree: NginxTree,
  server: ServerBlock,
  port: number,
  http2Listen: boolean,
  planned: PlannedListens,
): { add: NewStatement[]; upgrade: Array<{ listen: Listen; args: string[] }>; sources: Listen[] } {
  const add: NewStatement[] = [];
  const upgrade: Array<{ listen: Listen; args: string[] }> = [];
  const sources = server.listens.filter(isPlainHttp);
  const mine = new Set<string>();
  if (sources.some((l) => l.implicit)) add.push({ name: 'listen', args: ['80'] }); // keep the *:80 an explicit listen would otherwise drop
  for (const source of sources) {
    const address = listenAddress(source, port);
    const socket = parseListen({
      kind: 'directive',
      name: 'listen',
      words: [
        { raw: 'listen', value: 'listen', start: 0, end: 0, quoted: false },
        { raw: address, value: address, start: 0, end: 0, quoted: false },
      ],
      start: 0,
      end: 0,
      innerComments: [],
      parent: null,
    }).socket;
    if (mine.has(socket)) continue;
    mine.add(socket);
    const already = server.listens.find((l) => l.socket === socket);
    if (already) {
      if (!already.ssl && !already.implicit) upgrade.push({ listen: already, args: [...already.directive.words.slice(1).map((w) => w.raw), 'ssl'] });
      continue;
    }
    const args = [address, 'ssl'];
    if (http2Listen) args.push('http2');
    // Options nginx allows once per socket are carried over only when nobody else on that socket set one.
    if (!socketTaken(tree, planned, socket, 'default') && source.options.some((o) => o === 'default_server')) args.push('default_server');
    const ipv6only = source.options.find((o) => optionName(o) === 'ipv6only');
    if (ipv6only && !socketTaken(tree, planned, socket, 'socket')) args.push(ipv6only);
    planned.set(socket, [...(planned.get(socket) ?? []), ...args.slice(1)]);
    add.push({ name: 'listen', args });
  }
  return { add, upgrade, sources };
}
