/** `autossl fleet run | status | hook auth|cleanup`: the node loop, the fleet's view, certbot's manual HTTP-01 hooks. */
import type { AutoSslConfig } from '../config/schema.js';
import { createAutoSsl, engineCore, engineState, type AutoSsl } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { storeOpener } from '../store/open.js';
import { fleetOf, fleetStore, type FleetSettings } from './config.js';
import { publishChallenge, withdrawChallenge } from './challenge.js';
import { FleetNode } from './node.js';
import { fleetStatus, formatFleetStatus, type FleetStatus } from './status.js';


import { FLEET_WEBROOT_ENV } from './env.js';

export function requireFleet(config: AutoSslConfig): FleetSettings {
  const settings = fleetOf(config);
  if (!settings) throw new AutoSslError('CONFIG_INVALID', 'This node is not in a fleet: the config has no fleet.node.', { hint: 'Add "fleet": { "node": "<this node\'s name>" } to the config of every node (README "Several nodes").' });
  return settings;
}

/** The fleet's view for `autossl status` (null outside a fleet). */
export async function fleetReport(engine: AutoSsl): Promise<FleetStatus | null> {
  const settings = fleetOf(engine.config);
  const state = engineState(engine);
  if (!settings || !state) return null;
  return fleetStatus(fleetStore(state()), settings);
}

export { formatFleetStatus };

/** certbot's --manual-auth-hook / --manual-cleanup-hook for HTTP-01 in a fleet (CERTBOT_TOKEN, CERTBOT_VALIDATION). */
export async function fleetHook(config: AutoSslConfig, phase: string, env: NodeJS.ProcessEnv): Promise<string> {
  const settings = requireFleet(config);
  const token = env.CERTBOT_TOKEN ?? '';
  const content = env.CERTBOT_VALIDATION ?? '';
  if (phase !== 'auth' && phase !== 'cleanup') throw new AutoSslError('HOOK_INPUT_INVALID', 'Usage: autossl fleet hook auth|cleanup (run by certbot)');
  if (!token || (phase === 'auth' && !content)) throw new AutoSslError('HOOK_INPUT_INVALID', 'CERTBOT_TOKEN and CERTBOT_VALIDATION are not set: certbot runs this hook for HTTP-01.');
  const webroot = env[FLEET_WEBROOT_ENV];
  const webroots = webroot && webroot.startsWith('/') ? [webroot] : [];
  const store = (await storeOpener(config))();
  try {
    const fleet = fleetStore(store);
    if (phase === 'cleanup') {
      await withdrawChallenge(config, fleet, token, webroots);
      return `withdrew ${token}`;
    }
    const done = await publishChallenge(config, fleet, settings, token, content, webroots);
    return `${env.CERTBOT_DOMAIN ?? ''}: token served by ${done.nodes.join(', ')} (${done.ms} ms)`;
  } finally {
    await store.close();
  }
}

/** The node loop until SIGTERM/SIGINT. */
export async function fleetRun(config: AutoSslConfig, log: (line: string) => void): Promise<void> {
  const settings = requireFleet(config);
  const engine = await createAutoSsl(config);
  const core = engineCore(engine)!;
  const state = engineState(engine)!;
  await core.recoverFirst();
  const node = new FleetNode(core, fleetStore(state()), settings, { log: (m) => log(`${settings.node}: ${m}`) });
  log(`${settings.node}: fleet node running (store ${state().kind} ${state().location})`);
  const stop = (): void => node.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await node.run();
  } finally {
    await engine.close();
  }
}
