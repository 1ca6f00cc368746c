/**
 * The default server of a port-80 address answers every request whose Host no server_name on that address names:
 * the bare IP, parked names, clients sending no Host. A certificate covers none of those, so a redirect to HTTPS in
 * that block must reach only the certificate's names (nginx picks the server block by Host before any rewrite
 * runs, so `location / { return 301 https://$host... }` or a new port-80 block taking over the default_server
 * listen would send the IP and every parked name to an HTTPS that fails for them). Treated as names the
 * certificate leaves uncovered, the redirect becomes planRedirect's per-host `map` + `if`, and every other Host
 * keeps the answer it had.
 */
import { isPlainHttp } from './listen.js';
import type { ServerBlock } from './tree.js';

/** The port-80 sockets this block is marked `default_server` (or `default`) on. */
export function defaultServerSockets(block: ServerBlock): string[] {
  return block.listens.filter((l) => isPlainHttp(l) && l.options.some((o) => o === 'default_server' || o === 'default')).map((l) => l.socket);
}

/** What a default server answers beyond its names, as a left-out "name" for notes and redirect planning. */
export function defaultServerAnswers(block: ServerBlock): string[] {
  const sockets = defaultServerSockets(block);
  return sockets.length ? [`every other Host on ${sockets.join(', ')} (the default server: the bare IP, parked names)`] : [];
}
