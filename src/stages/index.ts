import type { Plugin } from '../pipeline/context.js';
import { challengeWebrootPlugin } from './challenge-webroot.js';
import { issueCertbotPlugin } from './issue-certbot.js';
import { vhostHttpsPlugin } from './vhost-https.js';
import { nginxReloadPlugin, nginxValidatePlugin } from './nginx.js';
import { verifyTlsPlugin } from './verify-tls.js';
import { preflightPlugin } from './preflight.js';
import { stateRecordPlugin } from './state-record.js';

/** The built-in stages, applied before user plugins (user taps at STAGE.USER run after them). */
export const BUILTIN_PLUGINS: readonly Plugin[] = [preflightPlugin, stateRecordPlugin, challengeWebrootPlugin, issueCertbotPlugin, vhostHttpsPlugin, nginxValidatePlugin, nginxReloadPlugin, verifyTlsPlugin];
