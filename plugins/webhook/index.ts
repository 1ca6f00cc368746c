/**
 * The webhook plugin: POSTs every `notify` event (a renewal failed or succeeded; a certificate entered its renewal
 * window without being renewed; one expired; a renewed certificate could not be installed) as JSON to a URL of
 * yours, signed with HMAC-SHA256. Load it as "autossl:webhook" with options { url, secret, retries?, backoffMs?,
 * timeoutMs?, events? }. A delivery that still fails after its retries stays in autossl's outbox and is tried
 * again by the next renew run or timer; one that succeeded is never sent again.
 *
 * Verifying on the receiving side: X-Autossl-Signature is "sha256=" + hex(HMAC-SHA256(secret, timestamp + "." + body))
 * with timestamp = the X-Autossl-Timestamp header (Unix seconds); reject old timestamps to stop replays, and use
 * the body's "key" to drop a notification you have already seen.
 */
import crypto from 'node:crypto';
import { AutoSslError, definePlugin, type Notification } from 'autossl';

export const PLUGIN_NAME = 'webhook';

const KINDS: ReadonlyArray<Notification['kind']> = ['renewal-failed', 'renewal-due', 'expired', 'renewed', 'deploy-failed'];

export interface WebhookOptions {
  url: string;
  secret: string;
  retries: number;
  backoffMs: number;
  timeoutMs: number;
  events: ReadonlyArray<Notification['kind']>;
}

export function sign(secret: string, timestamp: string, body: string): string {
  return `sha256=${crypto.createHmac('sha256', secret).update(`${timestamp}.${body}`).digest('hex')}`;
}

export function validate(options: Record<string, unknown>): WebhookOptions {
  const { url, secret } = options;
  if (typeof url !== 'string' || !/^https?:\/\/[^\s]+$/.test(url))
    throw new AutoSslError('PLUGIN_LOAD_FAILED', `webhook: "url" must be an http(s) URL, got ${JSON.stringify(url)?.slice(0, 100)}.`);
  if (typeof secret !== 'string' || secret.length < 16)
    throw new AutoSslError('PLUGIN_LOAD_FAILED', 'webhook: "secret" must be a string of at least 16 characters (it signs every request).');
  const num = (key: string, fallback: number, max: number): number => {
    const v = options[key];
    if (v === undefined) return fallback;
    if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > max)
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `webhook: "${key}" must be an integer from 0 to ${max}.`);
    return v;
  };
  let events = KINDS;
  if (options.events !== undefined) {
    if (!Array.isArray(options.events) || !options.events.every((e) => KINDS.includes(e as Notification['kind'])))
      throw new AutoSslError('PLUGIN_LOAD_FAILED', `webhook: "events" must be a list of ${KINDS.join(', ')}.`);
    events = options.events as Notification['kind'][];
  }
  return { url, secret, retries: num('retries', 2, 20), backoffMs: num('backoffMs', 1000, 600_000), timeoutMs: num('timeoutMs', 10_000, 120_000), events };
}

export async function deliver(options: WebhookOptions, notification: Notification): Promise<void> {
  const body = JSON.stringify({ event: notification.kind, ...notification });
  let lastError = '';
  for (let attempt = 0; attempt <= options.retries; attempt++) {
    if (attempt > 0) await new Promise((r) => setTimeout(r, options.backoffMs * 2 ** (attempt - 1)));
    const timestamp = String(Math.floor(Date.now() / 1000));
    try {
      const res = await fetch(options.url, {
        method: 'POST',
        headers: {
          'Content-Type': 'application/json',
          'User-Agent': 'autossl-webhook',
          'X-Autossl-Event': notification.kind,
          'X-Autossl-Timestamp': timestamp,
          'X-Autossl-Signature': sign(options.secret, timestamp, body),
        },
        body,
        signal: AbortSignal.timeout(options.timeoutMs),
      });
      if (res.ok) return;
      lastError = `HTTP ${res.status}`;
      if (res.status < 500 && res.status !== 429) break; // the receiver refuses it: retrying now will not help
    } catch (error) {
      lastError = (error as Error).message;
    }
  }
  throw new AutoSslError(
    'PLUGIN_ERROR',
    `webhook: could not deliver "${notification.kind}" for ${notification.lineage} to ${options.url}: ${lastError}; it stays queued and is retried later.`,
    { details: { plugin: PLUGIN_NAME } },
  );
}

export default definePlugin<WebhookOptions>({
  name: PLUGIN_NAME,
  options: validate,
  apply(hooks, api) {
    hooks.notify.tapPromise(PLUGIN_NAME, async (notification) => {
      if (api.options.events.includes(notification.kind)) await deliver(api.options, notification);
    });
  },
});
