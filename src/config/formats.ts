/**
 * The string formats the schemas name, checked with node:net (the old regular expressions took "999.1.1.1" for an
 * address and "10.0.0.0/99" for a range). Shared by the config's Ajv and the agent's (fastify's) Ajv.
 */
import net from 'node:net';
import type { Ajv } from 'ajv';

/** host:port as the agent's `listen` takes it ("127.0.0.1:7443", "[::1]:7443", "localhost:7443"); null if not. */
export function parseListenAddress(value: string): { host: string; port: number; loopback: boolean } | null {
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(value);
  if (!m) return null;
  const host = m[1] ?? m[2]!;
  const port = Number(m[3]);
  if (port < 1 || port > 65535) return null;
  if (m[1] !== undefined ? !net.isIPv6(host) : host !== 'localhost' && !net.isIPv4(host)) return null;
  return { host, port, loopback: host === 'localhost' || host === '::1' || host.startsWith('127.') };
}

/** A DNS resolver: an address, "v4:port", "[v6]" or "[v6]:port" (a bare v6 address is one too). */
export function isResolver(value: string): boolean {
  if (net.isIP(value)) return true;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::(\d{1,5}))?$/.exec(value);
  if (!m) return false;
  if (m[3] !== undefined && (Number(m[3]) < 1 || Number(m[3]) > 65535)) return false;
  return m[1] !== undefined ? net.isIPv6(m[1]) : m[3] !== undefined && net.isIPv4(m[2]!);
}

/** An address range "192.0.2.0/24", "2001:db8::/32": the address and a prefix its family allows. */
export function isCidr(value: string): boolean {
  const m = /^([^/]+)\/(\d{1,3})$/.exec(value);
  if (!m) return false;
  const family = net.isIP(m[1]!);
  if (!family) return false;
  try {
    new net.BlockList().addSubnet(m[1]!, Number(m[2]), family === 4 ? 'ipv4' : 'ipv6');
    return true;
  } catch {
    return false; // a prefix over 32 (v4) or 128 (v6)
  }
}

// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

/** Each format: its check, and how an error says what was expected. */
export const FORMATS: Record<string, { validate: (value: string) => boolean; expected: string }> = {
  text: { validate: (v) => !CONTROL.test(v), expected: 'a string without control characters' },
  // (a zone, "fe80::1%eth0", names a link on this host: never an address the world resolves to)
  ip: { validate: (v) => net.isIP(v) !== 0 && !v.includes('%'), expected: 'an IPv4 or IPv6 address' },
  resolver: { validate: isResolver, expected: 'an IP address, optionally with :port' },
  cidr: { validate: isCidr, expected: 'a CIDR range like 104.16.0.0/13' },
  listen: { validate: (v) => parseListenAddress(v) !== null, expected: 'host:port, such as "127.0.0.1:7443" or "[::1]:7443"' },
};

/** The formats as Ajv takes them (the config's precompiled validator calls these too). */
export const AJV_FORMATS = Object.fromEntries(Object.entries(FORMATS).map(([name, f]) => [name, { type: 'string' as const, validate: f.validate }]));

/** Teaches an Ajv the formats and the annotation keywords (which check nothing). */
export function addFormats(ajv: Ajv, annotations: readonly string[]): Ajv {
  for (const [name, f] of Object.entries(AJV_FORMATS)) ajv.addFormat(name, f);
  for (const keyword of annotations) if (!ajv.getKeyword(keyword)) ajv.addKeyword({ keyword, schemaType: ['string', 'number'] });
  return ajv;
}
