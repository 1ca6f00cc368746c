/**
 * Every key of the config, once: its type, its default, its bounds and what it means. The TypeScript types, the
 * validation (schema.ts, with Ajv), docs/configuration.md (docs.ts) and the agent's site bodies come from here.
 *
 * Annotations beyond JSON Schema (registered with Ajv as keywords that check nothing):
 * - `expected`: how an error names what the key takes ("an https:// ACME directory URL");
 * - `pathKind`: a path resolved against the config file's directory (`path`), one that nginx reads too (`nginx`:
 *   no "$", quotes, whitespace...), or a command (`command`: a bare name is looked up on PATH);
 * - `defaultText`: the default as the docs show it, where the value depends on the machine or is a fraction.
 * A default computed when the config loads (batch.concurrency) is a symbol-keyed function: Ajv and JSON never see it.
 *
 * Over 400 lines on purpose: it is one table, read top to bottom as the config's reference; split, a key's
 * neighbours (and the order docs/configuration.md shows them in) would be in another file.
 */
import { Type, type Static, type TSchema, type SchemaOptions } from '@sinclair/typebox';
import os from 'node:os';

/** The default number of certbot processes at once: certbot mostly waits on the CA, so a few per core. */
export function defaultConcurrency(): number {
  return Math.min(32, Math.max(4, os.availableParallelism() * 6));
}

/** A default computed when the config loads (the number of cores), not when the docs are written. */
export const RUNTIME_DEFAULT = Symbol('runtimeDefault');

/** Custom annotations: Ajv is told of them (they check nothing); the OpenAPI document leaves them out. */
export const ANNOTATIONS = ['expected', 'pathKind', 'defaultText'] as const;

type Options = SchemaOptions & { expected?: string; pathKind?: 'path' | 'nginx' | 'command'; defaultText?: string; [RUNTIME_DEFAULT]?: () => unknown };

/** A non-empty string without control characters (format "text"): nothing with a line break reaches a file. */
export const Text = (options: Options = {}) => Type.String({ minLength: 1, format: 'text', ...options });
const Int = (minimum: number, maximum: number, options: Options = {}) => Type.Integer({ minimum, maximum, ...options });
const Bool = (options: Options = {}) => Type.Boolean(options);
const Texts = (options: Options = {}, item: Options = {}) => Type.Array(Text(item), { default: [], ...options });
/** One of a few strings: a plain JSON Schema enum (an anyOf of literals would give Ajv's errors per branch). */
export const Choice = <const T extends readonly string[]>(values: T, options: Options = {}) =>
  Type.Unsafe<T[number]>({ type: 'string', enum: [...values], ...options });
const Path = (kind: 'path' | 'nginx' | 'command', options: Options = {}) => Text({ pathKind: kind, ...options });
const Section = <T extends Parameters<typeof Type.Object>[0]>(properties: T, description: string) =>
  Type.Object(properties, { additionalProperties: false, default: {}, description });

/**
 * An ACME certificate profile (Let's Encrypt: classic, tlsserver, shortlived): a name, or { name, required }.
 * certbot gets `--preferred-profile NAME` (the CA's default when it lacks it), or `--required-profile NAME`.
 */
export const ProfileSchema = Type.Union(
  [
    Text({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', expected: 'a profile name such as "shortlived" (letters, digits, ".", "-", "_")' }),
    Type.Object(
      {
        name: Text({ pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$', expected: 'a profile name such as "shortlived" (letters, digits, ".", "-", "_")' }),
        required: Type.Optional(Bool({ description: "true: --required-profile (the order fails rather than fall back to the CA's default profile)." })),
      },
      { additionalProperties: false },
    ),
  ],
  {
    expected: 'a profile name ("classic", "tlsserver", "shortlived", or one the CA lists) or { "name": ..., "required": true }',
    description:
      'The ACME certificate profile (certbot 4.0 or newer): classic, tlsserver, shortlived, or any the CA\'s directory lists; { "name", "required": true } refuses the CA\'s default.',
  },
);

const NGINX_PATH = 'it ends up in nginx\'s files: a "$" (a variable there, even quoted), whitespace, a quote or a control character is refused';

export const CertbotSchema = Section(
  {
    binary: Path('command', { default: 'certbot', description: 'The certbot command (a bare name is looked up on PATH).' }),
    configDir: Path('nginx', { default: '/etc/letsencrypt', description: `certbot's --config-dir; ${NGINX_PATH}.` }),
    workDir: Path('path', { default: '/var/lib/letsencrypt', description: "certbot's --work-dir." }),
    logsDir: Path('path', { default: '/var/log/letsencrypt', description: "certbot's --logs-dir." }),
    server: Type.Optional(
      Text({
        pattern: '^https://[^\\s]+$',
        expected: 'an https:// ACME directory URL',
        description: "The ACME directory URL; certbot's default (Let's Encrypt) when absent.",
      }),
    ),
    email: Type.Optional(
      Text({
        pattern: '^[^\\s@,;]+@[^\\s@,;]+\\.[^\\s@,;]+$',
        expected: 'an email address (or leave it out to register without one)',
        description: "The ACME account's address; absent: the account registers without one.",
      }),
    ),
    keyType: Choice(['ecdsa', 'rsa'] as const, { default: 'ecdsa', description: 'The certificate key type.' }),
    extraArgs: Texts(
      { description: 'Options added to every certbot call (option values in the same string: "--rsa-key-size=4096").' },
      { pattern: '^-', expected: 'a certbot option starting with "-" (option values go in the same string: "--rsa-key-size=4096")' },
    ),
    // a name with "=" or a line break would set another variable than the one written
    env: Type.Record(Type.String(), Text(), {
      default: {},
      propertyNames: { pattern: '^[A-Za-z_][A-Za-z0-9_]*$' },
      expected: 'an environment variable name (letters, digits, "_"; not starting with a digit)',
      description: "Environment of certbot's runs (e.g. REQUESTS_CA_BUNDLE for a private CA).",
    }),
    timeoutMs: Int(1000, 3_600_000, { default: 120_000, description: 'A certbot run taking longer is stopped.' }),
    revocationStatusUrl: Type.Optional(
      Text({
        pattern: '^https?://[^\\s]+\\{serial\\}[^\\s]*$',
        expected: 'an http(s):// URL with {serial} in it',
        description:
          'The CA\'s revocation status of a certificate, as a URL with {serial} (hex) answering JSON with "Status" (pebble\'s management API). Absent: the CRL named in the certificate.',
      }),
    ),
  },
  'certbot: the ACME client autossl runs.',
);

export const NginxSchema = Section(
  {
    binary: Path('command', { default: 'nginx', description: 'The nginx command.' }),
    config: Path('path', { default: '/etc/nginx/nginx.conf', description: 'The main config file.' }),
    reloadCommand: Type.Optional(
      Type.Array(Text(), {
        minItems: 1,
        expected: 'a non-empty argument list such as ["systemctl", "reload", "nginx"]',
        description: 'How nginx is reloaded; default `nginx -c <config> -s reload`.',
      }),
    ),
    extraArgs: Texts({ description: 'Arguments added to every nginx call (e.g. `-p`).' }),
    httpsPort: Int(1, 65535, { default: 443, description: 'The TLS port written into `listen`.' }),
    http2: Bool({ default: true, description: 'Serve HTTP/2 on the TLS listeners autossl writes.' }),
    lockTimeoutMs: Int(100, 3_600_000, { default: 120_000, description: 'How long a run waits for another autossl process to finish its config edit.' }),
  },
  'nginx: the web server autossl edits.',
);

const RESOLVERS = { expected: 'an IP address, optionally with :port', format: 'resolver' };

export const DefaultsSchema = Section(
  {
    redirect: Bool({ default: false, description: 'Redirect HTTP to HTTPS.' }),
    hsts: Bool({ default: false, description: 'Send Strict-Transport-Security.' }),
    challenge: Choice(['http-01', 'dns-01'] as const, { default: 'http-01', description: 'How the CA checks control of the names (wildcards need dns-01).' }),
    domainTimeoutMs: Int(1000, 3_600_000, { default: 30_000, description: 'A domain taking longer is reported with the stage it is stuck in.' }),
    deadlineMs: Int(1000, 86_400_000, {
      default: 600_000,
      description: 'A domain taking longer fails with TIMEOUT (naming the stage and plugin) and is rolled back.',
    }),
    verifyTimeoutMs: Int(100, 600_000, { default: 5_000, description: 'How long after reload the TLS check keeps trying to see the new certificate.' }),
    profile: Type.Optional(ProfileSchema),
  },
  'What every site has unless it says otherwise.',
);

export const PreflightSchema = Section(
  {
    timeoutMs: Int(100, 120_000, { default: 3_000, description: 'Every probe (DNS query, HTTP fetch) gives up after this long.' }),
    resolvers: Texts({ description: 'DNS resolvers ("1.1.1.1", "127.0.0.1:8053", "[::1]:53"); empty: the system\'s.' }, RESOLVERS),
    authoritative: Bool({ default: false, description: "Ask the zone's authoritative servers (no caches in between)." }),
    concurrency: Int(1, 1024, { default: 64, description: 'Domains checked at once by `autossl check`.' }),
    cloudflareRanges: Type.Optional(
      Type.Array(Text({ format: 'cidr', expected: 'a CIDR range like 104.16.0.0/13' }), {
        description: "Cloudflare's proxy ranges; the shipped list when absent.",
      }),
    ),
    maxFailedValidations: Int(1, 100, {
      default: 3,
      description: "Refuse a name after this many failed ACME validations within the window (Let's Encrypt's limit is 5 an hour).",
    }),
    failedValidationWindowMinutes: Int(1, 10_080, { default: 60, description: 'The window of maxFailedValidations.' }),
    backoffAfter: Int(1, 1000, {
      default: 3,
      description:
        "After this many failed authorizations of a name in a row (with this ACME account), no order for it for 1 hour, doubling with each further failure: Let's Encrypt pauses a name after a long run of them.",
    }),
    backoffMaxHours: Int(1, 8760, { default: 168, description: 'The longest back-off, in hours (a week by default).' }),
  },
  "Pre-flight: what Let's Encrypt will see, checked before ordering.",
);

export const AgentLimitsSchema = Section(
  {
    connections: Int(1, 1_000_000, {
      default: 256,
      description: "Open connections in all; more are closed as they are accepted (the unit's LimitNOFILE is far above).",
    }),
    connectionsPerAddress: Int(1, 1_000_000, { default: 64, description: 'Open connections from one source address.' }),
    headersTimeoutMs: Int(100, 60_000, {
      default: 10_000,
      description: 'The request line and headers must arrive within this long of the connection (or the previous answer).',
    }),
    bodyTimeoutMs: Int(100, 10_000, { default: 10_000, description: 'The whole body must arrive within this long of the headers.' }),
    idleTimeoutMs: Int(100, 600_000, { default: 72_000, description: 'A kept-alive connection with no request is closed after this long.' }),
    bodyBytesInFlight: Int(1024, 1024 * 1024 * 1024, {
      default: 8 * 1024 * 1024,
      description: 'Bytes of bodies being received (their signature not checked yet), all connections together.',
    }),
  },
  'What no client, signed or not, can exceed.',
);

export const AgentSchema = Section(
  {
    listen: Text({
      default: '127.0.0.1:7443',
      format: 'listen',
      expected: 'host:port, such as "127.0.0.1:7443" or "[::1]:7443"',
      description: 'host:port ("127.0.0.1:7443", "[::1]:7443"); anything but loopback needs `tls`.',
    }),
    tokensFile: Path('path', {
      default: '/etc/autossl/agent-tokens',
      description: 'The shared secrets, one per line (several for rotation); the file must not be readable by group or others.',
    }),
    tls: Type.Optional(
      Type.Object(
        {
          cert: Path('path', { expected: 'the path of a PEM certificate', description: 'PEM certificate (and chain).' }),
          key: Path('path', { expected: 'the path of its PEM key', description: 'PEM key.' }),
        },
        { additionalProperties: false, description: 'Serve HTTPS with this certificate and key (a panel on another host must use it).' },
      ),
    ),
    documentRoot: Type.Optional(
      Text({
        pattern: '^/',
        expected: 'an absolute path template such as "/home/{username}/public_html"',
        description:
          'The document root of a panel\'s domain from the request\'s user name: "/home/{username}/public_html" or "/home/{username}/{domain}/public". Absent: found from the vhost.',
      }),
    ),
    batchWindowMs: Int(0, 60_000, {
      default: 1500,
      description: 'Issue requests arriving within this long of each other join one batch (a panel sends one per domain).',
    }),
    // a panel of 10,000 domains re-checks them all in one loop: every status call fits in the read burst, every
    // issue-async in the queue (twice over)
    rateLimit: Section(
      {
        perSecond: Int(1, 1_000_000, { default: 50, description: 'Sustained calls per second that change something, per token.' }),
        burst: Int(1, 10_000_000, { default: 500, description: 'The burst allowed above perSecond.' }),
        readPerSecond: Int(1, 1_000_000, { default: 2000, description: "Sustained read-only calls per second (a panel's status loop over every domain)." }),
        readBurst: Int(1, 10_000_000, { default: 20_000, description: 'The burst allowed above readPerSecond.' }),
      },
      'Per token; /ssl/issue-async is not limited here: it is queued, up to maxQueued.',
    ),
    maxQueued: Int(1, 10_000_000, {
      default: 20_000,
      description: 'Domains accepted by /ssl/issue-async and not finished, at most (past it: 503 AGENT_QUEUE_FULL).',
    }),
    maxBodyBytes: Int(1024, 64 * 1024 * 1024, { default: 256 * 1024, description: 'Request bodies larger than this are refused (413) before they are read.' }),
    limits: AgentLimitsSchema,
    syncTimeoutMs: Int(1000, 3_600_000, {
      default: 100_000,
      description: '/ssl/renew answers within this long (the panel waits 120 s); past it, 202 with the job id.',
    }),
    stopTimeoutMs: Int(0, 3_600_000, {
      default: 90_000,
      description: 'How long a stop waits for running certificate orders before leaving them to the next start.',
    }),
    logLevel: Choice(['fatal', 'error', 'warn', 'info', 'debug', 'silent'] as const, { default: 'info', description: "The agent's log level." }),
  },
  '`autossl agent`: the signed HTTP API a hosting panel drives.',
);

/** A site's keys (the config's `sites[]`; the agent's /v1/issue takes some of them). */
export const SiteProperties = {
  domain: Type.String({ expected: 'a domain name', description: "The certificate's first name." }),
  aliases: Type.Array(Type.String({ expected: 'a domain name' }), {
    default: [],
    expected: 'a list of domain names',
    description: 'More names on the same certificate (each name in one site only).',
  }),
  challenge: Type.Optional(Choice(['http-01', 'dns-01'] as const, { description: 'defaults.challenge when absent; `dns-01` allows `*.` names.' })),
  documentRoot: Type.Optional(Path('nginx', { description: `The webroot for HTTP-01; ${NGINX_PATH}.` })),
  vhost: Type.Optional(Path('path', { description: 'The vhost file (only blocks in it are edited); found by server_name when absent.' })),
  redirect: Type.Optional(Bool({ description: 'defaults.redirect when absent.' })),
  hsts: Type.Optional(Bool({ description: 'defaults.hsts when absent.' })),
  certName: Type.Optional(
    Text({
      pattern: '^(?!.*\\.\\.)[A-Za-z0-9][A-Za-z0-9._-]{0,199}$',
      expected: 'a certbot certificate name (letters, digits, ".", "-", "_"; no "..")',
      description: "certbot's --cert-name; the domain when absent.",
    }),
  ),
  profile: Type.Optional(ProfileSchema),
  blockNames: Type.Optional(
    Choice(['keep', 'cover'] as const, {
      description: 'The other names of the server block: `keep` (default) leaves them out of the certificate; `cover` adds those whose own pre-flight passes.',
    }),
  ),
};
export const SiteSchema = Type.Object(SiteProperties, { additionalProperties: false });

const PluginOptions = Type.Record(Type.String(), Type.Unknown());
const STORE_MODULE = "a store module's path or package name";
const POSTGRES_URL = 'a PostgreSQL connection string ("postgresql://autossl@db.example/autossl")';
const ISSUER_MODULE = 'the path of an issuer module ("./my-issuer.mjs", relative to the config file)';
const Plugin = Type.Union([Text(), Type.Tuple([Type.String()]), Type.Tuple([Type.String(), PluginOptions])], {
  expected: 'a plugin name or path, or [name, options]',
});

export const ConfigSchema = Type.Object(
  {
    certbot: CertbotSchema,
    nginx: NginxSchema,
    serverAddresses: Texts(
      { description: "This server's public addresses (pre-flight compares DNS with them)." },
      { format: 'ip', expected: 'an IPv4 or IPv6 address' },
    ),
    stateDir: Path('nginx', {
      default: '/var/lib/autossl',
      description: `The state database, the journal of in-flight edits, locks, the DNS-01 hook scripts; ${NGINX_PATH} (uploads and the challenge directory are under it).`,
    }),
    challengeDir: Path('nginx', {
      default: '/var/lib/autossl/acme-challenge',
      defaultText: '<stateDir>/acme-challenge',
      description: `The webroot for sites whose vhost has no usable document root; ${NGINX_PATH}.`,
    }),
    defaults: DefaultsSchema,
    renewal: Section(
      {
        windowFraction: Type.Number({
          exclusiveMinimum: 0,
          exclusiveMaximum: 1,
          default: 1 / 3,
          defaultText: '1/3',
          expected: 'a number between 0 and 1 (1/3 renews in the last third of the lifetime)',
          description:
            "The renewal window: the last this-fraction of a certificate's lifetime (1/3: the last 30 of 90 days); at least half of it for lifetimes under 10 days (3 of 6 days).",
        }),
      },
      'When certificates are renewed.',
    ),
    preflight: PreflightSchema,
    dns01: Section(
      {
        propagationTimeoutMs: Int(0, 3_600_000, {
          default: 120_000,
          description: 'How long to wait for a TXT record to be visible before telling certbot to go on.',
        }),
        resolvers: Texts({ description: "Resolvers asked for the TXT record (default: preflight.resolvers, else the system's)." }, RESOLVERS),
      },
      'DNS-01 challenges.',
    ),
    notify: Section(
      {
        retryBaseMs: Int(0, 86_400_000, {
          default: 60_000,
          description: 'A notification whose delivery failed is tried again after this (doubling per attempt, at most 6 hours).',
        }),
      },
      'Notifications (the webhook plugin).',
    ),
    batch: Section(
      {
        concurrency: Int(1, 256, {
          [RUNTIME_DEFAULT]: defaultConcurrency,
          defaultText: 'min(32, max(4, 6 × cores))',
          description: 'certbot processes at once (each new order in a private directory set, adopted after).',
        }),
        privateOrders: Bool({ default: true, description: 'Order new lineages in private certbot directories, in parallel (false: one certbot at a time).' }),
        installWindowMs: Int(0, 60_000, {
          default: 2_000,
          description: 'How long the HTTPS edits of a batch wait for more domains to join one nginx -t and reload.',
        }),
      },
      'Many domains at once.',
    ),
    plugins: Type.Array(Plugin, {
      default: [],
      expected: 'a list of plugin names, paths, or [name, options]',
      description: 'Package names or file paths (relative to the config file), or [name, options].',
    }),
    store: Type.Optional(
      Type.Union(
        [
          Text({ expected: STORE_MODULE }),
          Type.Object({ module: Text({ expected: STORE_MODULE }), options: Type.Optional(PluginOptions) }, { additionalProperties: false }),
          Type.Object({ postgres: Text({ expected: POSTGRES_URL }) }, { additionalProperties: false }),
        ],
        {
          expected: `"sqlite", "postgres", ${STORE_MODULE}, { "postgres": ${POSTGRES_URL} } or { "module": ..., "options": {...} }`,
          defaultText: '"sqlite"',
          description:
            'Where autossl keeps its state: "sqlite" (state.db under stateDir, one machine); { "postgres": "postgresql://user@host/db" } (a database several nodes share, its locks advisory locks; the password may come from PGPASSWORD or ~/.pgpass), or "postgres" to read that connection string from AUTOSSL_STORE_POSTGRES; or a store module (a path beside the config or a package name, found as plugins are) whose default export is a StoreFactory; { "module", "options" } passes it options.',
        },
      ),
    ),
    issuer: Type.Optional(
      Type.Union(
        [
          Type.Literal('certbot'),
          Type.Object({ module: Text({ pattern: '^[./]', expected: ISSUER_MODULE }), options: Type.Optional(PluginOptions) }, { additionalProperties: false }),
        ],
        {
          expected: `"certbot" or { "module": ${ISSUER_MODULE}, "options": {...} }`,
          defaultText: '"certbot"',
          description:
            'Who obtains certificates: "certbot", or an issuer module (a path relative to the config file) whose default export is { name, find, list, obtain, renew } or a function (options, api) returning it; see src/issuer/issuer.ts.',
        },
      ),
    ),
    sites: Type.Array(SiteSchema, {
      default: [],
      expected: 'a list of sites',
      description: 'The sites autossl keeps (names it finds in nginx need no entry).',
    }),
    agent: AgentSchema,
    fleet: Type.Optional(
      Type.Object(
        {
          node: Text({
            pattern: '^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$',
            expected: 'a node name (letters, digits, ".", "-", "_"; at most 63)',
            description: "This node's name in the fleet (unique per node; shown by autossl status).",
          }),
          keyFile: Type.Optional(
            Path('path', {
              description:
                'A file whose bytes encrypt private keys in the store (AES-256-GCM, key = SHA-256 of the file); the same file on every node. Absent: keys are stored as PEM.',
            }),
          ),
          liveMs: Int(1000, 3_600_000, {
            default: 15_000,
            description: 'A node whose last heartbeat is older is not waited for (challenge acknowledgements).',
          }),
          ackTimeoutMs: Int(1000, 3_600_000, { default: 30_000, description: 'How long a published challenge waits for every live node to serve it.' }),
          pollMs: Int(20, 60_000, { default: 250, description: 'How often `autossl fleet run` looks at the store (tokens, lineages, heartbeat).' }),
        },
        {
          additionalProperties: false,
          description:
            'Several nginx nodes behind one name sharing one store (README "Several nodes"): tokens and certificates go through the store to every node.',
        },
      ),
    ),
  },
  { additionalProperties: false },
);

export type RawConfig = Static<typeof ConfigSchema>;
export type SiteConfig = Static<typeof SiteSchema>;
export type AgentConfig = Static<typeof AgentSchema>;
export type AgentLimits = Static<typeof AgentLimitsSchema>;

/** The custom annotations of a schema node (TypeBox keeps them as given). */
export function annotations(schema: TSchema): Options {
  return schema as Options;
}
