/** The certbot process a hook runs under (certbot's pre/post, deploy and DNS hooks run in processes of their own). */
import fs from 'node:fs';
import { parentPid, processStartTime } from '../lock.js';

function cmdline(pid: number): string[] {
  try {
    return fs.readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\u0000');
  } catch {
    return [];
  }
}

/**
 * The certbot process that runs this hook: certbot starts hooks through a shell, so it is the nearest ancestor
 * whose command line is certbot's (falling back to the parent).
 */
function certbotProcess(): { pid: number; args: string[] } {
  for (let pid = process.ppid, hops = 0; pid > 1 && hops < 6; pid = parentPid(pid), hops++) {
    const args = cmdline(pid);
    if (args.some((a, i) => i < 3 && /(^|\/)certbot$/.test(a))) return { pid, args };
  }
  return { pid: process.ppid, args: cmdline(process.ppid) };
}

/** certbot's renewal, as seen from one of its hook processes: one run id and owner for the pre and post hooks. */
export function certbotRun(): { runId: string; owner: string; forced: boolean; certName?: string } {
  const { pid: ppid, args } = certbotProcess();
  const start = processStartTime(ppid) ?? '-';
  const i = args.indexOf('--cert-name');
  const certName = i >= 0 ? args[i + 1] : args.find((a) => a.startsWith('--cert-name='))?.slice('--cert-name='.length);
  return {
    runId: `certbot-${ppid}-${start}`,
    owner: `${ppid} ${start}`,
    forced: args.includes('--force-renewal') || args.includes('--renew-by-default'),
    certName: certName && /^[A-Za-z0-9][A-Za-z0-9._-]*$/.test(certName) ? certName : undefined,
  };
}
