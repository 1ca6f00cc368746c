import type { Plugin } from '../pipeline/plugin.js';
import { challengeWebrootPlugin } from './challenge-webroot.js';
import { issueCertbotPlugin } from './issue-certbot.js';
import { vhostHttpsPlugin } from './vhost-https.js';
import { nginxReloadPlugin } from './nginx.js';
import { verifyTlsPlugin } from './verify-tls.js';
import { preflightPlugin } from './preflight.js';
import { stateRecordPlugin } from './state-record.js';
import { planNamesPlugin } from './plan.js';
import { planProfilePlugin } from './plan-profile.js';
import { backoffPlugin } from './backoff.js';
import { fleetPublishPlugin } from '../fleet/stage.js';

/** The built-in stages, applied before user plugins (user taps at STAGE.USER run after them). */
export const BUILTIN_PLUGINS: readonly Plugin[] = [
  planNamesPlugin,
  planProfilePlugin,
  preflightPlugin,
  backoffPlugin,
  stateRecordPlugin,
  challengeWebrootPlugin,
  issueCertbotPlugin,
  vhostHttpsPlugin,
  nginxReloadPlugin,
  verifyTlsPlugin,
  fleetPublishPlugin,
];

/** Every tap name the built-in plugins use (a TIMEOUT blames a plugin by name only when it is not one of these). */
export const BUILTIN_TAPS: ReadonlySet<string> = new Set([
  'plan-names',
  'plan-names-findings',
  'plan-names-self-check',
  'plan-profile',
  'preflight-dns',
  'preflight-caa',
  'preflight-budget',
  'preflight-backoff',
  'backoff-record',
  'preflight-nginx',
  'preflight-port80',
  'state-record',
  'challenge-webroot',
  'issue-renewed',
  'issue-certbot',
  'vhost-https',
  'vhost-hsts',
  'nginx-reload',
  'verify-tls',
  'fleet-publish',
]);
