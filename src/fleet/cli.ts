/** `autossl fleet run | status | hook auth|cleanup`: the node loop, the fleet's view, certbot's manual HTTP-01 hooks. */
import type { AutoSslConfig } from '../config/schema.js';
import { createAutoSsl, engineCore, engineState, type AutoSsl } from '../engine.js';
import { AutoSslError } from '../errors.js';
import { fleetOf, fleetStore, type FleetSettings } from './config.js';
import { FleetNode } from './node.js';
import { JobHandover } from './handover.js';
export { fleetHook } from './hook.js';
import { fleetStatus, formatFleetStatus, type FleetStatus } from './status.js';

export function requireFleet(config: AutoSslConfig): FleetSettings {
  const settings = fleetOf(config);
  if (!settings)
    throw new AutoSslError('CONFIG_INVALID', 'This node is not in a fleet: the config has no fleet.node.', {
      hint: 'Add "fleet": { "node": "<this node\'s name>" } to the config of every node (README "Several nodes").',
    });
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

/** The node loop until SIGTERM/SIGINT. */
export async function fleetRun(config: AutoSslConfig, log: (line: string) => void): Promise<void> {
  const settings = requireFleet(config);
  const engine = await createAutoSsl(config);
  const core = engineCore(engine)!;
  const state = engineState(engine)!;
  // a killed install is finished first (restored files); an unreachable store is retried by the loop, not fatal
  await core.recoverFirst().catch((error: unknown) => log(`${settings.node}: recovery: ${(error as Error).message}`));
  const say = (m: string): void => log(`${settings.node}: ${m}`);
  const node = new FleetNode(core, () => fleetStore(state()), settings, { log: say }, new JobHandover(engine, state, settings, say));
  log(`${settings.node}: fleet node running`);
  const stop = (): void => node.stop();
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
  try {
    await node.run();
  } finally {
    await engine.close();
  }
}
