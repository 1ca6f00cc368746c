/**
 * Server location: which server blocks answer a certificate's names (port 80 and TLS), refusing names nginx does not
 * serve and ambiguous matches; what certificate a block serves; the names a wildcard installs on.
 */
import path from 'node:path';
import { domainToASCII } from 'node:url';
import { AutoSslError } from '../errors.js';
import { normalizeDomain } from '../domain.js';
import { argValues, childDirectives, walkDirectives } from './parse.js';
import { covers } from '../issuer/certificate.js';
import type { NginxTree, ServerBlock } from './tree.js';
import { valueFromFile } from './value.js';

/** The first readable-looking certificate path a block's own ssl_certificate names (absolute), or null. */
export function servedCertificatePath(tree: NginxTree, block: ServerBlock): string | null {
  for (const d of childDirectives(block.directive, 'ssl_certificate')) {
    const p = fileRoot(argValues(d)[0]); // the file's bytes as the path they name
    if (p && !p.includes('$')) return path.isAbsolute(p) ? p : path.join(tree.prefix, p);
  }
  return null;
}

/**
 * The names a certificate is installed on. A wildcard that no block answers literally (the Opterius panel's
 * "wildcard for example.com": `*.example.com` with one vhost per subdomain) stands for every name a block answers
 * exactly that it covers, except blocks serving a certificate kept apart (an upload stays where it is).
 */
export function installTargets(tree: NginxTree, names: readonly string[], keepUnder: readonly string[] = []): string[] {
  const out: string[] = [];
  const kept = (block: ServerBlock): boolean => {
    const p = servedCertificatePath(tree, block);
    return p !== null && keepUnder.some((dir) => p.startsWith(path.resolve(dir) + path.sep));
  };
  for (const n of names) {
    if (!n.startsWith('*.')) {
      if (!out.includes(n)) out.push(n);
      continue;
    }
    const found = tree.findServers(n);
    if (found.http.length || found.https.length) {
      out.push(n);
      continue;
    }
    for (const server of tree.servers) {
      for (const raw of server.names) {
        let name: string;
        try {
          name = normalizeDomain(raw);
        } catch {
          continue;
        }
        if (out.includes(name) || names.includes(name) || !covers([n], name)) continue;
        const located = tree.findServers(name);
        if ((located.https[0] ?? located.http[0]) !== server || kept(server)) continue;
        out.push(name);
      }
    }
  }
  return out;
}

export function serverLabel(server: ServerBlock): string {
  const { line } = lineOf(server.config.source, server.directive.start);
  return `${server.file}:${line}`;
}

function lineOf(source: string, offset: number): { line: number } {
  let line = 1;
  for (let i = 0; i < offset; i++) if (source.charCodeAt(i) === 10) line++;
  return { line };
}

export interface LocateOptions {
  /** Only server blocks in this file (the site's configured "vhost") are candidates. */
  vhostFile?: string;
}

/**
 * Every ssl_certificate line of the tree, in file order: the path as written, resolved against the prefix, and
 * where it is written. A path with variables, and an inline (data:) certificate, name no file: left out.
 */
export function sslCertificateLines(tree: NginxTree): Array<{ file: string; line: number; path: string; resolved: string }> {
  const out: Array<{ file: string; line: number; path: string; resolved: string }> = [];
  for (const [file, config] of tree.files) {
    for (const d of walkDirectives(config.children)) {
      if (d.name !== 'ssl_certificate') continue;
      const p = argValues(d)[0];
      if (!p || p.includes('$') || p.startsWith('data:')) continue;
      let line = 1;
      for (let i = 0; i < d.start; i++) if (config.source.charCodeAt(i) === 10) line++;
      out.push({ file, line, path: p, resolved: path.isAbsolute(p) ? p : path.join(tree.prefix, p) });
    }
  }
  return out;
}

/** Every certificate path the tree's ssl_certificate / ssl_certificate_key lines name (absolute). */
export function referencedPaths(tree: NginxTree): Set<string> {
  const out = new Set<string>();
  for (const config of tree.files.values()) {
    for (const d of walkDirectives(config.children)) {
      if (d.name !== 'ssl_certificate' && d.name !== 'ssl_certificate_key') continue;
      const p = argValues(d)[0];
      if (p && !p.includes('$')) out.add(path.resolve(path.isAbsolute(p) ? p : path.join(tree.prefix, p)));
    }
  }
  return out;
}

/** The block that holds (or will hold) the certificate for a name: its TLS block, else its port-80 block. */
export function certificateBlock(tree: NginxTree, name: string, vhostFile?: string): ServerBlock | null {
  try {
    const located = locateServers(tree, [name], { vhostFile });
    return located.https.get(name) ?? located.http.get(name) ?? null;
  } catch {
    return null;
  }
}

/** Finds the server blocks for the names; refuses names nginx does not serve and ambiguous matches. */
export function locateServers(
  tree: NginxTree,
  names: readonly string[],
  options: LocateOptions = {},
): { http: Map<string, ServerBlock | null>; https: Map<string, ServerBlock | null> } {
  for (const n of names) normalizeDomain(n, { allowWildcard: true }); // a domain never reaches a config line unvalidated
  if (tree.loop) throw tree.loop; // nginx cannot load it: refused while planning, before any order or nginx -t
  const http = new Map<string, ServerBlock | null>();
  const https = new Map<string, ServerBlock | null>();
  const vhostFile = options.vhostFile ? path.resolve(options.vhostFile) : undefined;
  const pick = (name: string, found: ServerBlock[], where: string): ServerBlock | null => {
    let candidates = found;
    if (vhostFile && found.length) {
      candidates = found.filter((s) => path.resolve(s.file) === vhostFile);
      if (!candidates.length) {
        throw new AutoSslError(
          'VHOST_NOT_FOUND',
          `${name} is served ${where} by ${found.map(serverLabel).join(', ')}, not by a block in the site's configured vhost ${vhostFile}.`,
          {
            hint: `Put ${name} in a server_name of ${vhostFile}, or fix the site's "vhost" in the config.`,
          },
        );
      }
    }
    if (candidates.length > 1) {
      throw new AutoSslError(
        'VHOST_AMBIGUOUS',
        `${name} is served ${where} by ${candidates.length} server blocks equally: ${candidates.map(serverLabel).join(', ')}.`,
      );
    }
    return candidates[0] ?? null;
  };
  for (const name of names) {
    const found = tree.findServers(name);
    if (found.http.length === 0 && found.https.length === 0) {
      if (tree.errors.length) {
        // the name may well be in a file autossl could not read: never guess, say where the syntax breaks
        throw new AutoSslError('NGINX_PARSE_ERROR', `${name} was not found, and autossl cannot read ${tree.errors.map((e) => e.message).join('; ')}.`, {
          details: tree.errors[0]!.details,
        });
      }
      const unicode = unicodeSpelling(tree, name);
      throw new AutoSslError(
        'VHOST_NOT_FOUND',
        `No server block in ${tree.mainFile} or its includes has server_name ${name}.`,
        unicode
          ? {
              hint: `${serverLabel(unicode.server)} has server_name ${JSON.stringify(unicode.written)}, the same name written in Unicode: browsers send ${name} (Host and SNI) and nginx compares bytes, so that block never answers them. Write ${name} in its server_name, then run again.`,
            }
          : {},
      );
    }
    http.set(name, pick(name, found.http, 'on port 80'));
    https.set(name, pick(name, found.https, 'over TLS'));
  }
  return { http, https };
}

export function ensureBlockEditable(tree: NginxTree, server: ServerBlock): void {
  const broken = tree.errors.find((e) => (e.details.file as string | undefined) === server.file);
  if (broken) throw broken;
}

/** A path (a root, a certificate) read from a file as the path it names (see value.ts). */
export function fileRoot(root: string | undefined): string | undefined {
  return root === undefined ? undefined : valueFromFile(root);
}

/**
 * A server_name written in Unicode (UTF-8 bytes in the file, read as latin1 like every file here) whose ASCII
 * (punycode) form is `name`: nginx never matches it against what browsers send, but it is what the admin meant.
 */
function unicodeSpelling(tree: NginxTree, name: string): { server: ServerBlock; written: string } | null {
  for (const server of tree.servers) {
    for (const raw of server.names) {
      if (!/[^\x21-\x7e]/.test(raw)) continue;
      // UTF-8 in the file (the usual), else the bytes as latin1 (a file saved in ISO-8859-1)
      const utf8 = Buffer.from(raw, 'latin1').toString('utf8');
      for (const written of utf8.includes('\ufffd') ? [raw] : [utf8, raw]) {
        if (domainToASCII(written.replace(/\.$/, '')) === name) return { server, written };
      }
    }
  }
  return null;
}
