/**
 * A file under /.well-known/acme-challenge/ served by every node: written here, published to the store, and
 * waited for until every live node has written it and acknowledged (certbot's manual auth hook, and the pre-flight
 * port-80 probe, which the balancer may also send to any node).
 */
import fsp from 'node:fs/promises';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { challengeDir, writeServed } from '../stages/webroot-dirs.js';
import type { FleetStore } from '../store/store.js';
import type { FleetSettings } from './config.js';

/** A token is a file name: base64url, as ACME's (RFC 8555 8.3), or autossl's own probe names. */
export function validToken(token: string): boolean {
  return /^[A-Za-z0-9_-]{1,200}$/.test(token);
}

/** The nodes whose heartbeat is younger than fleet.liveMs (this one always counts). */
export async function liveNodes(fleet: FleetStore, settings: FleetSettings, now = Date.now()): Promise<string[]> {
  const nodes = (await fleet.nodes()).filter((n) => now - n.seenAt <= settings.liveMs).map((n) => n.node);
  return [...new Set([settings.node, ...nodes])].sort();
}

export async function publishChallenge(
  config: AutoSslConfig,
  fleet: FleetStore,
  settings: FleetSettings,
  token: string,
  content: string,
  webroots: readonly string[] = [],
): Promise<{ nodes: string[]; ms: number }> {
  if (!validToken(token)) throw new AutoSslError('HOOK_INPUT_INVALID', `The challenge token ${JSON.stringify(token).slice(0, 80)} is not a file name.`);
  const started = Date.now();
  for (const root of new Set([config.challengeDir, ...webroots])) await writeServed(path.join(await challengeDir(root), token), content);
  await fleet.publishChallenge({ token, content, node: settings.node, at: Date.now() });
  await fleet.ack(token, settings.node);
  const deadline = started + settings.ackTimeoutMs;
  for (;;) {
    const want = await liveNodes(fleet, settings);
    const acked = new Set(await fleet.acks(token));
    const missing = want.filter((n) => !acked.has(n));
    if (missing.length === 0) return { nodes: want, ms: Date.now() - started };
    if (Date.now() > deadline) {
      throw new AutoSslError(
        'FLEET_ACK_TIMEOUT',
        `Nodes ${missing.join(', ')} did not serve the challenge token within ${settings.ackTimeoutMs / 1000} s: the CA's request may reach them.`,
        {
          hint: `Check that "autossl fleet run" runs on ${missing.join(', ')} and reaches the store; a node that is down stops being waited for ${settings.liveMs / 1000} s after its last heartbeat.`,
          details: { missing, token },
        },
      );
    }
    await new Promise((r) => setTimeout(r, Math.min(100, settings.pollMs)));
  }
}

export async function withdrawChallenge(config: AutoSslConfig, fleet: FleetStore, token: string, webroots: readonly string[] = []): Promise<void> {
  if (!validToken(token)) return;
  await fleet.withdrawChallenge(token);
  for (const root of new Set([config.challengeDir, ...webroots])) await fsp.rm(path.join(root, '.well-known', 'acme-challenge', token), { force: true });
}
