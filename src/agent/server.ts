/**
 * `autossl agent`: the long-running HTTP service a hosting panel drives (fastify: schema-validated bodies, body
 * limits, structured logs with pino). Every request but GET /health is signed (auth.ts); each route is in the
 * table in routes.ts and answered by opterius.ts (the Opterius panel's calls) or native.ts (/v1).
 *
 * A request is checked in this order, and a refusal at any step runs nothing: the body size (413, before it is
 * read), the signature (401), the per-token rate limit (429), a replayed signature of a mutating route (401),
 * the JSON (400: invalid, not an object, a __proto__/constructor key), the route's schema (400), then the
 * handler's own checks of domain and user name (400). Every error is JSON `{error, code, hint}`.
 *
 * Start: the engine finishes what a killed agent left (journals, undo steps, jobs), and domains a kill interrupted
 * are queued again. Stop (SIGTERM): no new work (409 AGENT_STOPPING), accepted batches start, running ones get
 * agent.stopTimeoutMs to finish; what is still running then is left to the next start's recovery.
 */
import { EventEmitter } from 'node:events';
import fs from 'node:fs';
import Fastify, { type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { AutoSslConfig } from '../config/schema.js';
import { parseListenAddress, validateConfig } from '../config/schema.js';
import { createAutoSsl, type AutoSsl } from '../engine.js';
import { AutoSslError, isAutoSslError, toAutoSslError } from '../errors.js';
import { preloadX509 } from '../issuer/certificate.js';
import { storeOpener } from '../store/open.js';
import type { Store } from '../store/store.js';
import { checkSignatureHeaders, MAX_SKEW_SECONDS, parseRfc3339, TokenBudgets, TokenSource, verifyRequest, type Token } from './auth.js';
import { withBatchThread } from './batch-thread.js';
import { bodyReader, BodyRefused, capConnections, serverTimeoutOptions } from './limits.js';
import { IssueIntake, type AgentEvent } from './intake.js';
import { panelEmail, panelUsername } from './input.js';
import { nativeHandlers } from './native.js';
import { opteriusHandlers } from './opterius.js';
import { ROUTES } from './routes.js';
import { packageVersion, parseBody, sendError } from './answers.js';
import { WildcardJobs } from './wildcard.js';

export interface AgentContext {
  engine: AutoSsl;
  config: AutoSslConfig;
  store: Store;
  intake: IssueIntake;
  wildcard: WildcardJobs;
  /** Job progress for /v1/events: 'event' with an AgentEvent. */
  events: EventEmitter;
  version: string;
  /** Domains of the config file's sites (the agent never overrides them). */
  fileSites: ReadonlySet<string>;
  /** Validates a site as a config file's site; throws CONFIG_INVALID naming the key. */
  validateSite(site: Record<string, unknown>): void;
  /** Runs `fn` when the agent stops (open event streams end); returns what stops waiting for it. */
  onStop(fn: () => void): () => void;
}

export type Handler = (req: FastifyRequest, reply: FastifyReply, ctx: AgentContext) => Promise<unknown>;

export interface RunningAgent {
  /** http(s)://host:port */
  url: string;
  port: number;
  app: FastifyInstance;
  ctx: AgentContext;
  /** Graceful stop; resolves when the agent has stopped. */
  close(): Promise<void>;
  /** SIGHUP: re-reads the tokens file and the config (what can change while running); never stops the agent. */
  reload(): Promise<void>;
}

export interface AgentOptions {
  /** An engine to use (tests); one is created from the config otherwise, and closed at stop. */
  engine?: AutoSsl;
  /** Listen on this port instead of agent.listen's (0: any free port; tests). */
  port?: number;
  /** Reads the config again (the CLI: the same file); reload() uses it. Absent: reload() re-reads the tokens only. */
  loadConfig?: () => Promise<AutoSslConfig>;
}

/** autossl's version, from its package.json (found upwards from this file, in the source tree or in dist). */
const registeredRoutes = new WeakMap<FastifyInstance, Array<{ method: string; url: string }>>();

/** The routes an app registered (what the OpenAPI test compares with the document). */
export function routesOf(app: FastifyInstance): ReadonlyArray<{ method: string; url: string }> {
  return registeredRoutes.get(app) ?? [];
}

/** The fastify app with every route; `ctx` answers them. */
export function buildApp(ctx: AgentContext, tokens: readonly Token[] | { readonly current: readonly Token[] }): FastifyInstance {
  const { agent } = ctx.config;
  const tokensNow = (): readonly Token[] => ('current' in tokens ? tokens.current : tokens);
  // read at each use: a SIGHUP may have changed them
  const limits = (): AutoSslConfig['agent']['limits'] => ctx.config.agent.limits;
  const timeouts = serverTimeoutOptions(agent.limits);
  const tls = agent.tls ? { key: fs.readFileSync(agent.tls.key), cert: fs.readFileSync(agent.tls.cert) } : undefined;
  const app = Fastify({
    ...(tls ? { https: { ...tls, ...timeouts.server } } : { http: timeouts.server }),
    requestTimeout: timeouts.requestTimeout,
    keepAliveTimeout: timeouts.keepAliveTimeout,
    logger:
      agent.logLevel === 'silent'
        ? false
        : { level: agent.logLevel, redact: { paths: ['req.headers["x-signature"]', 'req.headers.authorization'], remove: true } },
    bodyLimit: agent.maxBodyBytes,
    return503OnClosing: false,
    forceCloseConnections: true,
    requestIdHeader: false,
    exposeHeadRoutes: false,
    // what the HTTP parser refuses (431 headers too large, a malformed request line) is answered as JSON too
    clientErrorHandler: (error: Error & { code?: string }, socket: import('node:net').Socket) => {
      if (socket.destroyed || !socket.writable) return;
      const big = error.code === 'HPE_HEADER_OVERFLOW';
      const body = JSON.stringify({
        error: big ? 'The request headers are too large.' : 'The request is not valid HTTP.',
        code: 'AGENT_BAD_REQUEST',
        hint: 'Send a plain HTTP/1.1 request: the signed headers, a JSON body.',
      });
      socket.end(
        `HTTP/1.1 ${big ? '431 Request Header Fields Too Large' : '400 Bad Request'}\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
      );
    },
    ajv: { customOptions: { coerceTypes: false, removeAdditional: false, useDefaults: false, allErrors: false } },
  }) as unknown as FastifyInstance;
  const limiter = new TokenBudgets(agent.rateLimit);
  const registered: Array<{ method: string; url: string }> = [];
  app.addHook('onRoute', (r) => {
    for (const method of [r.method].flat()) registered.push({ method, url: r.url });
  });
  registeredRoutes.set(app, registered);

  // the raw bytes are what was signed: kept as they came, parsed only after the signature checks out
  app.removeAllContentTypeParsers();
  app.addContentTypeParser(
    '*',
    bodyReader(limits, () => ctx.config.agent.maxBodyBytes),
  );
  const connections = capConnections(app.server as unknown as import('node:http').Server, limits);
  // an unknown route never has its body read
  app.addHook('onRequest', async (req, reply) => {
    if (!req.routeOptions.url) return sendError(reply, new AutoSslError('AGENT_NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}.`));
    return undefined;
  });

  app.setErrorHandler((error: Error & { code?: string; statusCode?: number; validation?: unknown; validationContext?: string }, req, reply) => {
    if (isAutoSslError(error)) {
      const e = toAutoSslError(error);
      if (e.code === 'INTERNAL') req.log.error({ err: error }, 'internal error');
      return sendError(reply, e);
    }
    if (error.validation) {
      const where = error.validationContext ?? 'body';
      return sendError(
        reply,
        new AutoSslError('AGENT_BAD_REQUEST', `Invalid ${where}: ${error.message.replace(/^(body|querystring|params)\/?/, `${where} `).slice(0, 300)}.`),
      );
    }
    if (error instanceof BodyRefused) {
      if (error.statusCode === 408) reply.header('connection', 'close');
      return reply.code(error.statusCode).send({ error: error.message, code: error.answerCode, hint: error.hint });
    }
    if (error.code === 'FST_ERR_CTP_BODY_TOO_LARGE')
      return reply.code(413).send({
        error: `The body is larger than ${agent.maxBodyBytes} bytes (agent.maxBodyBytes).`,
        code: 'AGENT_BAD_REQUEST',
        hint: 'Send less; a certificate with its chain is a few KB.',
      });
    if (error.statusCode && error.statusCode >= 400 && error.statusCode < 500)
      return reply.code(error.statusCode).send({
        error: error.message.slice(0, 300),
        code: 'AGENT_BAD_REQUEST',
        hint: 'Send a JSON object with the fields the route documents (GET /v1/openapi.json lists them).',
      });
    req.log.error({ err: error }, 'unexpected error');
    return sendError(reply, new AutoSslError('INTERNAL', `The agent failed: ${error.message.slice(0, 300)}`));
  });
  app.setNotFoundHandler((req, reply) =>
    sendError(reply, new AutoSslError('AGENT_NOT_FOUND', `No route ${req.method} ${req.url.split('?')[0]!.slice(0, 200)}.`)),
  );

  const handlers: Record<string, Handler> = { ...opteriusHandlers, ...nativeHandlers };
  for (const spec of ROUTES) {
    const handler = handlers[spec.id];
    if (!handler) throw new AutoSslError('INTERNAL', `No handler for the route ${spec.id}.`);
    app.route({
      method: spec.method,
      url: spec.url,
      schema: {
        ...(spec.body ? { body: spec.body } : {}),
        ...(spec.query ? { querystring: spec.query } : {}),
        ...(spec.params ? { params: spec.params } : {}),
      },
      // the signature's headers and timestamp before a byte of the body is read: an unsigned client is never buffered
      ...(spec.signed
        ? { onRequest: async (req: FastifyRequest) => void checkSignatureHeaders(firstHeader(req, 'x-timestamp'), firstHeader(req, 'x-signature')) }
        : {}),
      preValidation: async (req, reply) => {
        const raw = Buffer.isBuffer(req.body) ? req.body : Buffer.alloc(0);
        if (spec.signed) {
          const header = (name: string): string | undefined => {
            const v = req.headers[name];
            return Array.isArray(v) ? v[0] : v;
          };
          const token = verifyRequest(
            { method: req.method, url: req.url, timestamp: header('x-timestamp'), signature: header('x-signature'), body: raw },
            tokensNow(),
          );
          connections.prove(req.raw.socket);
          const wait = limiter.take(spec, token.id);
          if (wait) return sendError(reply, new AutoSslError('AGENT_RATE_LIMITED', limiter.refusal(spec, token.id)), { 'retry-after': String(wait) });
          if (
            spec.mutating &&
            !(await ctx.store.replay.remember(header('x-signature')!, parseRfc3339(header('x-timestamp')!) + (MAX_SKEW_SECONDS + 60) * 1000))
          ) {
            return sendError(reply, new AutoSslError('AGENT_REPLAYED', 'This signed request was already received; it is not run twice.'));
          }
          if (spec.mutating && ctx.intake.stopping) return sendError(reply, new AutoSslError('AGENT_STOPPING', 'The agent is stopping and takes no new work.'));
          req.log.debug({ token: token.id }, 'signed');
        }
        req.body = spec.method === 'GET' ? undefined : parseBody(raw);
        // the panel's user name and email are checked wherever they come, also on routes that do not use them
        if (spec.group === 'opterius' && req.body) {
          const body = req.body as Record<string, unknown>;
          panelUsername(body.username);
          panelEmail(body.email);
        }
        return undefined;
      },
      handler: async (req, reply) => handler(req, reply, ctx),
    });
  }
  return app;
}

function firstHeader(req: FastifyRequest, name: string): string | undefined {
  const v = req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** Starts the agent: recovery, then listening. */
export async function startAgent(config: AutoSslConfig, options: AgentOptions = {}): Promise<RunningAgent> {
  let tokens = new TokenSource(config.agent.tokensFile);
  const listen = parseListenAddress(config.agent.listen)!;
  // what short commands load on first use would stall the loop in the middle of the first batch (150 ms each)
  preloadX509();
  await import('execa');
  // batches run in a process of their own (batch-thread.ts); an engine given by a test stays as it is
  const engine = options.engine ?? withBatchThread(await createAutoSsl(config), config);
  await engine.recover();
  const store = (await storeOpener(config))();
  const events = new EventEmitter();
  events.setMaxListeners(0);
  const publish = (e: AgentEvent): boolean => events.emit('event', e);
  const stopFns = new Set<() => void>();
  const fileSites = new Set(config.sites.map((s) => s.domain));
  const ctx: AgentContext = {
    engine,
    config,
    store,
    intake: new IssueIntake(
      engine,
      { windowMs: config.agent.batchWindowMs, maxWindowMs: Math.max(config.agent.batchWindowMs * 4, 10_000), maxBatch: 500, maxQueued: config.agent.maxQueued },
      publish,
    ),
    wildcard: new WildcardJobs(engine, publish),
    events,
    version: packageVersion(),
    fileSites,
    validateSite: (site) => void validateConfig({ defaults: { challenge: config.defaults.challenge }, sites: [site] }, 'site', '/'),
    onStop: (fn) => {
      stopFns.add(fn);
      return () => stopFns.delete(fn);
    },
  };
  const app = buildApp(ctx, {
    get current() {
      return tokens.current;
    },
  });
  for (const why of tokens.ignored) app.log.warn(`tokens file ${config.agent.tokensFile}: ${why} (ignored)`);
  tokens.watch(tokenLog(app.log));
  requeueInterrupted(ctx, app.log);
  // a deep accept queue: in a burst of connections the kernel drops what does not fit, and a dropped SYN of the
  // panel is retried only after a second; the agent empties the queue fast (refusals are cheap), the kernel caps it
  await app.listen({ host: listen.host, port: options.port ?? listen.port, backlog: 4096 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : listen.port;
  const url = `${config.agent.tls ? 'https' : 'http'}://${listen.host.includes(':') ? `[${listen.host}]` : listen.host}:${port}`;
  let closing: Promise<void> | null = null;
  return {
    url,
    port,
    app,
    ctx,
    close: () =>
      (closing ??= (async () => {
        const finished = await ctx.intake.stop(config.agent.stopTimeoutMs);
        await ctx.wildcard.stop(finished ? config.agent.stopTimeoutMs : 0);
        if (!finished) app.log.warn('stopping with jobs still running: the next start finishes them (recovery)');
        for (const fn of stopFns) fn();
        tokens.close();
        await app.close();
        await store.close();
        if (!options.engine) await engine.close();
      })()),
    reload: async () => {
      tokens.reload('re-read (SIGHUP)');
      if (!options.loadConfig) return;
      let next: AutoSslConfig;
      try {
        next = await options.loadConfig();
      } catch (error) {
        app.log.error(`SIGHUP: the config cannot be used, the agent keeps the one it runs with: ${(error as Error).message}`);
        return;
      }
      const before = ctx.config.agent;
      // listen and tls are bound at start, the rate limiter and the batch window made then; the engine keeps its
      // nginx, certbot and state settings
      const restart = (['listen', 'tls', 'rateLimit', 'batchWindowMs'] as const).filter((k) => JSON.stringify(before[k]) !== JSON.stringify(next.agent[k]));
      ctx.config = { ...ctx.config, sites: next.sites, agent: { ...next.agent, listen: before.listen, tls: before.tls } };
      ctx.fileSites = new Set(next.sites.map((s) => s.domain));
      if (next.agent.tokensFile !== tokens.file) {
        try {
          const moved = new TokenSource(next.agent.tokensFile);
          tokens.close();
          tokens = moved;
          tokens.watch(tokenLog(app.log));
        } catch (error) {
          app.log.error(`SIGHUP: agent.tokensFile ${next.agent.tokensFile} cannot be used, the agent keeps ${tokens.file}: ${(error as Error).message}`);
        }
      }
      const t = serverTimeoutOptions(next.agent.limits);
      Object.assign(app.server, { headersTimeout: t.server.headersTimeout, requestTimeout: t.requestTimeout, keepAliveTimeout: t.keepAliveTimeout });
      if (next.agent.logLevel !== before.logLevel && next.agent.logLevel !== 'silent') app.log.level = next.agent.logLevel;
      app.log.info(`SIGHUP: config re-read${restart.length ? `; agent.${restart.join(', agent.')} changed and takes effect at the next start` : ''}`);
    },
  };
}

/** The agent's logger as the token watcher's. */
function tokenLog(log: FastifyInstance['log']): { info(m: string): void; warn(m: string): void; error(m: string): void } {
  return { info: (m) => log.info(m), warn: (m) => log.warn(m), error: (m) => log.error(m) };
}

/**
 * Domains a killed agent had accepted (202) but not finished are queued again, once: the panel fired and forgot
 * them (its autoIssue reads no answer), so dropping them would leave sites without HTTPS for good.
 */
function requeueInterrupted(ctx: AgentContext, log: FastifyInstance['log']): void {
  const since = Date.now() - 86_400_000;
  void (async () => {
    for (const job of await ctx.engine.jobs(200)) {
      if (job.source !== 'agent' || !job.finishedAt || job.finishedAt < since) continue;
      // once per job: a second restart does not queue them again
      if (!(await ctx.store.jobs.markRequeued(job.id))) continue;
      const domains = job.domains.filter((d) => d.code === 'INTERRUPTED').map((d) => d.domain);
      // served now (a lineage the recovery installed, or the one from before): /ssl/status keeps saying so meanwhile
      for (const d of domains) await ctx.intake.add(d, (await ctx.engine.certificate(d, { fresh: true }).catch(() => null))?.exists === true).recorded;
    }
  })().catch((error: unknown) => log.error({ err: error }, 'queueing the domains a killed agent left failed; they stay failed with INTERRUPTED'));
}
