import { servedSerial } from '../../src/stages/verify-tls.js';

/**
 * The serial nginx serves for a name over TLS, asked until it is `want` (for up to 5 s). Right after a reload a new
 * connection may still reach an old worker for a moment (nginx reloads gracefully), whatever the run itself saw.
 */
export async function servedEventually(name: string, want: string, host = '127.0.0.1', port = 443): Promise<string | null> {
  let got: string | null = null;
  for (let i = 0; i < 50; i++) {
    got = await servedSerial(host, port, name).catch(() => null);
    if (got === want) return got;
    await new Promise((r) => setTimeout(r, 100));
  }
  return got;
}
