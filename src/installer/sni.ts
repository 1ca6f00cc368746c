/** What a TLS server presents for a name (SNI): the truth the TLS check and status go by. */
import tls from 'node:tls';
import { normalizeSerial } from '../issuer/certificate.js';

let sharedContext: tls.SecureContext | undefined;

/**
 * The serial nginx presents at host:port for `servername`. The timeout is this process's: when its event loop was
 * stalled past it (the timer fires late), nginx's answer may be waiting unread, so it is given one more period.
 */
export function servedSerial(host: string, port: number, servername: string, timeoutMs = 2000): Promise<string> {
  return new Promise((resolve, reject) => {
    // one TLS context for every check: a context per connection loads the CA store each time (ms of the loop's
    // time per check, hundreds of checks in a batch); nothing is verified here but the serial
    sharedContext ??= tls.createSecureContext();
    const socket = tls.connect({ host, port, servername, rejectUnauthorized: false, secureContext: sharedContext }, () => {
      clearTimeout(timer);
      const serial = socket.getPeerCertificate().serialNumber ?? '';
      socket.end();
      resolve(normalizeSerial(serial));
    });
    let due = Date.now() + timeoutMs;
    let extended = false;
    const expire = (): void => {
      if (!extended && Date.now() - due > 250) {
        extended = true;
        due = Date.now() + timeoutMs;
        timer = setTimeout(expire, timeoutMs);
        return;
      }
      socket.destroy();
      reject(new Error(`timed out connecting to ${host}:${port}`));
    };
    let timer = setTimeout(expire, timeoutMs);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
  });
}
