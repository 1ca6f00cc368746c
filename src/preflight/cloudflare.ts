/**
 * Cloudflare's published proxy ranges (cloudflare.com/ips-v4 and /ips-v6). A name resolving into them is
 * proxied ("orange cloud"): Let's Encrypt's HTTP-01 request reaches Cloudflare, not this server.
 * Overridable with `preflight.cloudflareRanges` when Cloudflare publishes new ones.
 */
import net from 'node:net';

export const CLOUDFLARE_RANGES: readonly string[] = [
  '173.245.48.0/20',
  '103.21.244.0/22',
  '103.22.200.0/22',
  '103.31.4.0/22',
  '141.101.64.0/18',
  '108.162.192.0/18',
  '190.93.240.0/20',
  '188.114.96.0/20',
  '197.234.240.0/22',
  '198.41.128.0/17',
  '162.158.0.0/15',
  '104.16.0.0/13',
  '104.24.0.0/14',
  '172.64.0.0/13',
  '131.0.72.0/22',
  '2400:cb00::/32',
  '2606:4700::/32',
  '2803:f800::/32',
  '2405:b500::/32',
  '2405:8100::/32',
  '2a06:98c0::/29',
  '2c0f:f248::/32',
];

export function cloudflareMatcher(ranges: readonly string[] = CLOUDFLARE_RANGES): (address: string) => boolean {
  const list = new net.BlockList();
  for (const range of ranges) {
    const [addr, prefix] = range.split('/');
    const type = net.isIPv6(addr!) ? 'ipv6' : 'ipv4';
    list.addSubnet(addr!, Number(prefix), type);
  }
  return (address) => {
    const type = net.isIPv6(address) ? 'ipv6' : net.isIPv4(address) ? 'ipv4' : null;
    return type !== null && list.check(address, type);
  };
}
