/**
 * Private keys at rest in the store: AES-256-GCM with a key derived from a key file (fleet.keyFile, the same
 * file on every node, kept out of the database and its backups). "enc:v1:<iv>:<tag>:<ciphertext>" (base64url).
 */
import crypto from 'node:crypto';
import { AutoSslError } from '../errors.js';
import { readRegularFile } from '../fsutil.js';

const PREFIX = 'enc:v1:';

/** The most a key file may hold: a key is 32 random bytes; anything near this is not a key file. */
const MAX_KEY_FILE_BYTES = 64 * 1024;
const KEY_FILE_HINT = 'Put the same key file on every node (e.g. 32 random bytes: head -c 32 /dev/urandom > FILE; chmod 600 FILE).';

function keyOf(file: string): Buffer {
  let bytes: Buffer;
  let mode: number;
  try {
    // a regular file only: /dev/zero would be read for ever, a FIFO would block every node's fleet run
    const read = readRegularFile(file, { maxBytes: MAX_KEY_FILE_BYTES, code: 'CONFIG_INVALID', what: 'fleet.keyFile', hint: KEY_FILE_HINT });
    bytes = read.data;
    mode = read.stat.mode;
  } catch (error) {
    if (error instanceof AutoSslError) throw error;
    throw new AutoSslError('CONFIG_INVALID', `fleet.keyFile ${file} cannot be read: ${(error as Error).message}`, { hint: KEY_FILE_HINT, cause: error });
  }
  // the file is the key to every private key in the store: one others can read protects nothing (as ssh refuses)
  if (mode & 0o077)
    throw new AutoSslError(
      'CONFIG_INVALID',
      `fleet.keyFile ${file} can be read by others (mode ${(mode & 0o777).toString(8)}): it unlocks every private key in the store.`,
      {
        hint: `chmod 600 ${file}`,
      },
    );
  if (bytes.length < 16)
    throw new AutoSslError('CONFIG_INVALID', `fleet.keyFile ${file} holds ${bytes.length} bytes: at least 16 are needed.`, {
      hint: 'head -c 32 /dev/urandom > FILE; chmod 600 FILE',
    });
  return crypto.createHash('sha256').update(bytes).digest();
}

export function sealKey(pem: string, keyFile: string | undefined): string {
  if (!keyFile) return pem;
  const iv = crypto.randomBytes(12);
  const cipher = crypto.createCipheriv('aes-256-gcm', keyOf(keyFile), iv);
  const body = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
  return `${PREFIX}${iv.toString('base64url')}:${cipher.getAuthTag().toString('base64url')}:${body.toString('base64url')}`;
}

export function openKey(stored: string, keyFile: string | undefined): string {
  if (!stored.startsWith(PREFIX)) return stored;
  if (!keyFile)
    throw new AutoSslError('CONFIG_INVALID', 'The store holds private keys encrypted with a key file, and this node has no fleet.keyFile.', {
      hint: 'Set fleet.keyFile to the same file the other nodes use.',
    });
  const [iv, tag, body] = stored.slice(PREFIX.length).split(':');
  try {
    const decipher = crypto.createDecipheriv('aes-256-gcm', keyOf(keyFile), Buffer.from(iv ?? '', 'base64url'));
    decipher.setAuthTag(Buffer.from(tag ?? '', 'base64url'));
    return Buffer.concat([decipher.update(Buffer.from(body ?? '', 'base64url')), decipher.final()]).toString('utf8');
  } catch (error) {
    if (error instanceof AutoSslError) throw error;
    throw new AutoSslError('CONFIG_INVALID', `A private key in the store does not open with fleet.keyFile ${keyFile}: another key file encrypted it.`, {
      hint: 'Use the same fleet.keyFile on every node.',
      cause: error,
    });
  }
}
