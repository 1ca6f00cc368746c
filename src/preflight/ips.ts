/** An address as compared with this server's own: lower case, an IPv4-mapped IPv6 address as IPv4. */
export function normalizeIp(address: string): string {
  return address.toLowerCase().replace(/^::ffff:/, '');
}
