/**
 * The `Issuer` seam: whatever obtains a certificate for names, given a challenge solver, and hands back a
 * `Lineage` value. certbot is the built-in issuer (src/issuer/certbot.ts); another one (an in-process ACME client,
 * a local CA in the tests) is named in the config and loaded like a plugin:
 *
 *     "issuer": "certbot"                                           (the default)
 *     "issuer": { "module": "./my-issuer.mjs", "options": { ... } }
 *
 * The module's default export is an issuer object or a factory `(options, api) => Issuer`. Modelled on certmagic's
 * `Issuer` (Issue(ctx, csr) -> IssuedCertificate) with the storage side (find, list) an issuer brings for the
 * lineages it keeps: the rest of autossl (renewal, status, recovery) asks the issuer, never a directory layout.
 */
import { pathToFileURL } from 'node:url';
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError, quote } from '../errors.js';
import { MAX_PEM_BYTES, readRegularFile } from '../fsutil.js';
import type { ChallengeSetup } from '../pipeline/context.js';
import type { Profile } from './profile.js';
// @peculiar/x509 takes ~150 ms to load: only paid when a Lineage value is read
import { x509 } from './certificate.js';

/** A certificate an issuer obtained: values, not a directory layout. Paths are what nginx's ssl_certificate names. */
export interface Lineage {
  /** Stable per set of names (certbot's --cert-name): a renewal keeps it. */
  id: string;
  names: string[];
  /** Upper-case hex, whole bytes (as nginx and `openssl x509 -serial` print it). */
  serial: string;
  notBefore: Date;
  notAfter: Date;
  /**
   * RFC 9773 (ACME Renewal Information) certificate id: base64url(AKI keyIdentifier) "." base64url(serial DER);
   * undefined for a certificate with no Authority Key Identifier (self-signed, some private CAs): it has no ARI.
   */
  ariCertId?: string;
  certPath: string;
  chainPath: string;
  fullchainPath: string;
  keyPath: string;
  /** certbot only: the lineage's renewal config (its webroot is kept there). */
  renewalConf?: string;
}

/**
 * A lineage's files under the names the pipeline's stages and plugins use (ctx.lineage, the `issue` hook's
 * result): certbot's names for the same paths a Lineage value carries. `renewalConf` is empty for an issuer that
 * keeps none.
 */
export interface LineageFiles {
  name: string;
  cert: string;
  chain: string;
  fullchain: string;
  privkey: string;
  renewalConf: string;
}

/** A certificate obtained elsewhere, as PEM texts, for Issuer.keep. `note` says where it came from. */
export interface KeptPems {
  cert: string;
  chain: string;
  fullchain: string;
  key: string;
  note: string;
}

/** One of the CA's problem documents (RFC 8555 section 6.7): an issuer's failure carries them in `details.problems`. */
export interface AcmeProblem {
  domain?: string;
  type?: string;
  detail: string;
}

/** What `obtain` is asked for. */
export interface ObtainRequest {
  /** The lineage the certificate goes into (a new one, or the existing lineage of these names). */
  id: string;
  names: string[];
  /** The solver the challenge stage set up: `http-01` with a webroot served for the names, or `dns-01` with a provider. */
  challenge: ChallengeSetup;
  /** Order even when a lineage of these names exists and is not due. */
  force: boolean;
  /** The ARI id of the certificate this one replaces (an existing lineage), for CAs that take ACME's `replaces`. */
  replaces?: string;
  /** The ACME certificate profile to ask for (planning checked the CA lists it and the issuer can ask). */
  profile?: Profile;
  /** Progress for the run's event stream. */
  log(message: string): void;
}

/** One lineage's result of a renewal run: renewed, not due (left alone), or failed with the CA's problems and why. */
export interface RenewalOutcome {
  lineage: string;
  names: string[];
  outcome: 'renewed' | 'not-due' | 'failed';
  problems: AcmeProblem[];
  /** Why it failed, in one line (set for a failure only). */
  message?: string;
}

/** A lineage as a renewal pass sees it (its serial null when its certificate cannot be read). */
export interface LineageSerial {
  lineage: string;
  names: string[];
  serial: string | null;
}

/** What `renewDue` is asked for. */
export interface RenewDueRequest {
  /** Only this lineage (`autossl renew --cert-name`). */
  certName?: string;
  /** Every lineage (or `certName`), due or not (`--force-renewal`). */
  force: boolean;
  /** The lineages as the caller saw them before: one whose serial changed since counts as renewed. */
  before: readonly LineageSerial[];
  /** The lineages as they are now (the caller's scan, which keeps parsed certificates), asked after the run. */
  current(): Promise<readonly LineageSerial[]>;
}

/**
 * A lineage certbot's renewals left to a hook that ran outside autossl (its post hook): not renewed (its serial
 * is the one the pre hook saw), with whether it was due by autossl's window then.
 */
export interface UnrenewedLineage {
  lineage: string;
  names: string[];
  due?: boolean;
}

export interface Issuer {
  /** Shown in events and status ("certbot", "local-ca"). */
  readonly name: string;
  /** The lineage with this id, or null when the issuer has none. */
  find(id: string): Promise<Lineage | null>;
  /**
   * The files of lineage `id` without reading its certificate (status asks for thousands: find parses each one);
   * null when the issuer has none. Absent: callers use find.
   */
  files?(id: string): LineageFiles | null;
  /** Every lineage the issuer keeps (status and renewal go over these). */
  list(): Promise<Lineage[]>;
  obtain(request: ObtainRequest, signal: AbortSignal): Promise<Lineage>;
  /**
   * A new certificate for the lineage's names, into the same lineage (same id). A renewal the CA (or the issuer)
   * refused throws an AutoSslError whose details carry the CA's `problems` and `reason`, why in one line without the
   * lineage's name (what a renewal report shows after it).
   */
  renew(lineage: Lineage, options: { force: boolean; log(message: string): void }, signal: AbortSignal): Promise<Lineage>;
  /**
   * Renews every due lineage (or `certName`; all with `force`) in one run of the issuer's own, which also installs
   * each renewed one (certbot: `certbot renew`, whose deploy hook puts each renewed lineage through the pipeline),
   * and says what became of each lineage. Throws only when the run itself could not happen (TIMEOUT, a missing
   * binary). Only the built-in certbot issuer's is used today (`autossl renew` still scans certbot's directories
   * around it, src/renewal/renew.ts); a module issuer's due lineages are renewed one by one through `renew` and
   * installed by autossl (src/renewal/issuer-renew.ts).
   */
  renewDue?(request: RenewDueRequest, signal: AbortSignal): Promise<RenewalOutcome[]>;
  /**
   * For a hook of the issuer's own renewals run outside autossl (certbot's post hook, after certbot's timer): the
   * lineages of `unrenewed` that run tried and failed, with the CA's problems, from the run's own record (certbot's
   * log); `tried` is how many lineages the run could have tried (the pre hook's count). Absent: none known.
   */
  lastRunFailures?(unrenewed: readonly UnrenewedLineage[], tried: number): RenewalOutcome[];
  /**
   * Whether a hook process runs inside an order autossl itself started (certbot runs its renewal hooks during
   * `certonly` too): such a hook does nothing, the issue installs the certificate itself. Absent: never.
   */
  insideOwnOrder?(env: NodeJS.ProcessEnv): boolean;
  /**
   * The lineage a renewal outside autossl just renewed, from the environment the issuer runs its deploy hook in
   * (certbot: RENEWED_LINEAGE and RENEWED_DOMAINS), checked before anything is touched: HOOK_INPUT_INVALID when it
   * is not one of the issuer's lineages or a name is not a domain. Absent: the issuer runs no deploy hook.
   */
  renewedLineage?(env: NodeJS.ProcessEnv): { id: string; domains: string[] };
  /** Whether the CA revoked the lineage's current certificate (asked now); absent: never known. */
  revoked?(lineage: Lineage): Promise<boolean>;
  revoke?(lineage: Lineage): Promise<void>;
  /** The lineage a certificate path nginx names belongs to, if it is one of this issuer's (status, served checks). */
  lineageOfPath?(file: string): string | undefined;
  /**
   * Keeps a certificate obtained elsewhere (another node of a fleet) as the next version of lineage `id`, where
   * find() and list() see it; absent: this issuer cannot (a fleet needs one that can).
   */
  keep?(id: string, pems: KeptPems): Promise<Lineage>;
  /**
   * Keeps renewals started outside autossl (certbot's timer) away from lineage `id` until `until`, while its names
   * back off (src/renewal/backoff-hold.ts), or lets them in again (null). Returns whether anything changed. Absent:
   * nothing renews the issuer's lineages but autossl, which checks the back-off itself.
   */
  holdRenewals?(id: string, until: number | null): boolean;
  /** Installs what makes renewals run outside autossl (certbot's timer) reach the server; returns the files written. */
  installHooks?(): string[];
  /**
   * After a run that created lineages `ids`: makes sure their renewals outside autossl reach the server; says what it
   * did, or why it could not (`warning`); null: it was in place. Absent: the issuer renews only through autossl.
   */
  ensureRenewalHooks?(ids: readonly string[]): { message: string; warning: boolean } | null;
  /**
   * Deletes lineage `id` (its certificates and key: nothing renews it any more); false when the issuer has no such
   * lineage. Throws (ISSUER_FAILED, CERTBOT_FAILED) when it cannot. Absent: this issuer's lineages are never deleted.
   */
  remove?(id: string): Promise<boolean>;
  /**
   * Finishes what a killed run of this issuer left behind (certbot: a private order that finished is adopted, the
   * rest of its directories goes); returns the ids of the lineages adopted. Absent: nothing to finish.
   */
  recover?(): Promise<string[]>;
  /** The paths a new lineage would get, for dry-run diffs; absent: placeholders under the state directory. */
  plannedPaths?(id: string): Pick<Lineage, 'certPath' | 'chainPath' | 'fullchainPath' | 'keyPath'>;
}

/** The config's `issuer`: the built-in certbot, or a module loaded like a plugin. */
export type IssuerSpec = 'certbot' | { module: string; options: Record<string, unknown> };

/** What an issuer module's factory receives besides its options. */
export interface IssuerApi {
  config: AutoSslConfig;
  /** Reads a lineage's files into a Lineage value (serial, dates, names and the ARI id from the certificate). */
  readLineage(files: Pick<Lineage, 'id' | 'certPath' | 'chainPath' | 'fullchainPath' | 'keyPath'>): Lineage;
}

function base64url(bytes: Uint8Array): string {
  return Buffer.from(bytes).toString('base64url');
}

/**
 * RFC 9773 section 4.1: the certificate's Authority Key Identifier keyIdentifier and its serial's DER content
 * octets (a leading zero byte kept when the high bit is set: serial 0x87654321 is "AIdlQyE"), each base64url
 * without padding, joined by a dot.
 */
export function ariCertId(cert: import('@peculiar/x509').X509Certificate): string {
  const { AuthorityKeyIdentifierExtension } = x509();
  const aki = cert.getExtension(AuthorityKeyIdentifierExtension);
  if (!aki?.keyId) throw new AutoSslError('ISSUER_FAILED', `The certificate ${cert.serialNumber} has no Authority Key Identifier: it has no ARI id.`);
  let hex = cert.serialNumber.replace(/[^0-9a-fA-F]/g, '');
  if (hex.length % 2) hex = `0${hex}`;
  let serial = Buffer.from(hex, 'hex');
  // the minimal DER INTEGER content of a positive number: no redundant leading zeros, one when the high bit is set
  while (serial.length > 1 && serial[0] === 0 && serial[1]! < 0x80) serial = serial.subarray(1);
  if (serial[0]! >= 0x80) serial = Buffer.concat([Buffer.from([0]), serial]);
  return `${base64url(Buffer.from(aki.keyId, 'hex'))}.${base64url(serial)}`;
}

function hasAuthorityKeyId(cert: import('@peculiar/x509').X509Certificate): boolean {
  return !!cert.getExtension(x509().AuthorityKeyIdentifierExtension)?.keyId;
}

/** A Lineage value from its files (the certificate is parsed once, here). A lineage without ARI id is still one. */
export function readLineageFiles(files: Pick<Lineage, 'id' | 'certPath' | 'chainPath' | 'fullchainPath' | 'keyPath' | 'renewalConf'>): Lineage {
  const pem = readRegularFile(files.certPath, { maxBytes: MAX_PEM_BYTES, code: 'FILE_UNSAFE', what: 'certificate' }).data.toString('utf8');
  const block = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/.exec(pem)?.[0];
  if (!block) throw new AutoSslError('CERTBOT_LINEAGE_UNKNOWN', `${files.certPath} holds no certificate.`);
  const lib = x509();
  const cert = new lib.X509Certificate(block);
  const san = cert.getExtension(lib.SubjectAlternativeNameExtension);
  const names = (san?.names.items ?? []).filter((n) => n.type === 'dns').map((n) => n.value.toLowerCase());
  let serial = cert.serialNumber.toUpperCase().replace(/^(00)+(?=.)/, '');
  if (serial.length % 2) serial = `0${serial}`;
  return { ...files, names, serial, notBefore: cert.notBefore, notAfter: cert.notAfter, ariCertId: hasAuthorityKeyId(cert) ? ariCertId(cert) : undefined };
}

/** The files view the pipeline's stages use (ctx.lineage): certbot's names for the same paths. */
export function lineageFiles(l: Lineage): LineageFiles {
  return { name: l.id, cert: l.certPath, chain: l.chainPath, fullchain: l.fullchainPath, privkey: l.keyPath, renewalConf: l.renewalConf ?? '' };
}

function isIssuer(x: unknown): x is Issuer {
  const i = x as Partial<Issuer> | null;
  return (
    !!i &&
    typeof i === 'object' &&
    typeof i.name === 'string' &&
    typeof i.obtain === 'function' &&
    typeof i.renew === 'function' &&
    typeof i.find === 'function' &&
    typeof i.list === 'function'
  );
}

/**
 * Imports an issuer module named in the config (an absolute path: the config's relative paths were resolved
 * against its directory when it was read). Errors carry ISSUER_LOAD_FAILED and the module's name.
 */
export async function loadIssuer(spec: Exclude<IssuerSpec, 'certbot'>, api: IssuerApi): Promise<Issuer> {
  const fail = (why: string, cause?: unknown): never => {
    throw new AutoSslError('ISSUER_LOAD_FAILED', `Cannot use issuer ${quote(spec.module)}: ${why}`, {
      hint: "The issuer module's default export is { name, find, list, obtain, renew } or a function (options, api) returning it.",
      cause,
      details: { issuer: spec.module },
    });
  };
  if (!path.isAbsolute(spec.module)) fail('give its path (absolute, or relative to the config file).');
  let mod: Record<string, unknown> = {};
  try {
    mod = (await import(pathToFileURL(spec.module).href)) as Record<string, unknown>;
  } catch (error) {
    fail((error as Error).message?.split('\n')[0] ?? String(error), error);
  }
  let candidate = mod.default ?? mod.issuer;
  if (typeof candidate === 'function') {
    try {
      candidate = await (candidate as (o: Record<string, unknown>, a: IssuerApi) => unknown)(spec.options, api);
    } catch (error) {
      if (error instanceof AutoSslError) throw error;
      fail(`it refused its options: ${(error as Error).message}`, error);
    }
  }
  if (!isIssuer(candidate)) fail('it does not export { name, find, list, obtain, renew }.');
  return candidate as Issuer;
}
