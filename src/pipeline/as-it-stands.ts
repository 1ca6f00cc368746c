/**
 * A preview (`issue --dry-run`, `vhost show --diff`) plans on the files as they are and writes nothing, so nginx
 * never validates anything in it: on a config that `nginx -t` already rejects it would show a clean diff while the
 * real run fails with NGINX_TEST_FAILED. It asks nginx first and says the config is broken before any edit.
 * One `nginx -t` serves every domain of a preview started within a moment (a dry run of --all).
 */
import { AutoSslError, toAutoSslError } from '../errors.js';
import type { Installer } from '../installer/installer.js';

const recent = new WeakMap<Installer, { at: number; result: Promise<void> }>();
const SHARED_MS = 2000;

export function configAsItStands(nginx: Installer): Promise<void> {
  const hit = recent.get(nginx);
  if (hit && Date.now() - hit.at < SHARED_MS) return hit.result;
  const result = nginx.test().catch((error: unknown) => {
    const e = toAutoSslError(error);
    if (e.code !== 'NGINX_TEST_FAILED') throw e;
    throw new AutoSslError('NGINX_TEST_FAILED', `The nginx config is broken as it stands, before any edit of autossl's: ${e.message}`, {
      hint: 'Fix what nginx reports (run nginx -t), then preview again; the real run would stop at the same place.',
      details: e.details,
    });
  });
  recent.set(nginx, { at: Date.now(), result });
  return result;
}
