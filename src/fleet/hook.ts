/** certbot's manual HTTP-01 hooks in a fleet: publish the token and wait for every live node, or withdraw it. */
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import { storeOpener } from '../store/open.js';
import { publishChallenge, withdrawChallenge } from './challenge.js';
import { fleetOf, fleetStore } from './config.js';
import { FLEET_WEBROOT_ENV } from './env.js';

/** certbot's --manual-auth-hook / --manual-cleanup-hook for HTTP-01 in a fleet (CERTBOT_TOKEN, CERTBOT_VALIDATION). */
export async function fleetHook(config: AutoSslConfig, phase: string, env: NodeJS.ProcessEnv): Promise<string> {
  const settings = fleetOf(config);
  if (!settings)
    throw new AutoSslError('CONFIG_INVALID', 'This node is not in a fleet: the config has no fleet.node.', {
      hint: 'Add "fleet": { "node": "<name>" } to the config (README "Several nodes").',
    });
  const token = env.CERTBOT_TOKEN ?? '';
  const content = env.CERTBOT_VALIDATION ?? '';
  if (phase !== 'auth' && phase !== 'cleanup') throw new AutoSslError('HOOK_INPUT_INVALID', 'Usage: autossl fleet hook auth|cleanup (run by certbot)');
  if (!token || (phase === 'auth' && !content))
    throw new AutoSslError('HOOK_INPUT_INVALID', 'CERTBOT_TOKEN and CERTBOT_VALIDATION are not set: certbot runs this hook for HTTP-01.');
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
