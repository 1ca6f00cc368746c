import { fileURLToPath } from 'node:url';

/** Set by the certbot issuer on a fleet node's certonly: the webroot its vhost serves tokens from for the names. */
export const FLEET_WEBROOT_ENV = 'AUTOSSL_FLEET_WEBROOT';

/** The hooks' own entry (src/fleet/hook-main.ts, built beside this file). */
export const FLEET_HOOK_ENTRY = fileURLToPath(new URL('./hook-main.js', import.meta.url));
