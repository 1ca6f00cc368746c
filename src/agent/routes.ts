/**
 * Every route of the agent, in one table: method, path, what it does, its request schema (fastify validates the
 * body and query with it) and its answers. The server registers exactly these; the OpenAPI document is built from
 * this table (docs/openapi.json is it, committed; a test checks both against the running routes).
 * Over 400 lines on purpose: one route per entry, each with its schema and every answer it can give; one table is
 * what the OpenAPI document and a reviewer checking a route against the panel's calls read.
 */

import { Type, type TSchema } from '@sinclair/typebox';
import { ANNOTATIONS, SiteProperties } from '../config/keys.js';
import { Domain as DOMAIN, Email as EMAIL, Username as USERNAME } from './fields.js';

/** A response's JSON Schema (documentation only: the answers are not validated). */
type Schema = Record<string, unknown>;

export interface RouteSpec {
  id: string;
  method: 'GET' | 'POST';
  url: string;
  group: 'opterius' | 'native' | 'health';
  summary: string;
  description: string;
  /** Unsigned: /health only. */
  signed: boolean;
  /** Changes something: a replayed signature is refused. */
  mutating: boolean;
  /** Past the rate limit it is queued, not refused (bounded by agent.maxQueued): the panel fires and forgets it. */
  queued?: boolean;
  /** TypeBox: fastify's Ajv checks the request with them, and the OpenAPI document shows them. */
  body?: TSchema;
  query?: TSchema;
  params?: TSchema;
  responses: Record<number, { description: string; schema?: Schema }>;
}

export const ERROR_BODY = Type.Object({
  error: Type.String({ description: 'What is wrong (the panel shows it).' }),
  code: Type.String({ description: 'A stable error code (README "Error codes").' }),
  hint: Type.String({ description: 'What to do about it.' }),
});

const CERTIFICATE: Schema = {
  type: 'object',
  required: ['domain', 'exists', 'state'],
  properties: {
    domain: { type: 'string' },
    exists: { type: 'boolean', description: 'nginx serves a certificate that covers the domain and has not expired.' },
    state: {
      type: 'string',
      enum: ['ok', 'due', 'failing', 'expired', 'revoked', 'missing'],
      description: 'due: inside its renewal window; failing: the last attempt failed; revoked: the CA revoked it.',
    },
    expires_at: { type: ['string', 'null'], format: 'date-time' },
    days_left: { type: ['integer', 'null'] },
    names: { type: 'array', items: { type: 'string' } },
    issuer: { type: ['string', 'null'] },
    serial: { type: ['string', 'null'] },
    custom: { type: 'boolean', description: 'An uploaded certificate (never renewed).' },
    last_error: {
      type: ['object', 'null'],
      properties: { code: { type: ['string', 'null'] }, message: { type: ['string', 'null'] }, at: { type: ['string', 'null'] } },
    },
    job: {
      type: ['object', 'null'],
      properties: { id: { type: 'string' }, state: { type: 'string' } },
      description: 'A queued or running issuance of the domain.',
    },
    ari: {
      type: ['object', 'null'],
      description: "The CA's ACME Renewal Information window for the served certificate (RFC 9773), as the last renewal pass asked it; null: none known.",
      properties: {
        state: { type: 'string', enum: ['none', 'future', 'open', 'past'] },
        start: { type: ['string', 'null'], format: 'date-time' },
        end: { type: ['string', 'null'], format: 'date-time' },
        renewAt: {
          type: ['string', 'null'],
          format: 'date-time',
          description: 'The moment picked inside the window (autossl renews then when certbot does not do ARI itself).',
        },
        explanationUrl: { type: ['string', 'null'] },
        fetchedAt: { type: 'string', format: 'date-time' },
        nextFetchAt: { type: 'string', format: 'date-time' },
        error: { type: ['string', 'null'] },
        warning: { type: ['string', 'null'] },
      },
    },
  },
};

const JOB: Schema = {
  type: 'object',
  properties: {
    id: { type: 'string' },
    kind: { type: 'string' },
    state: { type: 'string', enum: ['running', 'done', 'failed', 'interrupted'] },
    source: { type: 'string' },
    createdAt: { type: 'integer' },
    finishedAt: { type: ['integer', 'null'] },
    domains: {
      type: 'array',
      items: {
        type: 'object',
        properties: {
          domain: { type: 'string' },
          state: { type: 'string', enum: ['queued', 'checking', 'challenge', 'issuing', 'installing', 'done', 'failed'] },
          code: { type: ['string', 'null'] },
          message: { type: ['string', 'null'] },
          lineage: { type: ['string', 'null'] },
          stages: { type: 'array', items: { type: 'object', properties: { stage: { type: 'string' }, ms: { type: 'integer' } } } },
        },
      },
    },
  },
};

const QUEUE: Schema = {
  type: 'object',
  required: ['queued', 'max'],
  properties: {
    queued: { type: 'integer', description: 'Domains accepted by /ssl/issue-async and not finished.' },
    max: { type: 'integer', description: 'agent.maxQueued: past it, AGENT_QUEUE_FULL (503).' },
  },
};
const ACCEPTED: Schema = {
  type: 'object',
  required: ['status', 'job_id'],
  properties: { status: { type: 'string' }, job_id: { type: 'string' }, domain: { type: 'string' }, queue: QUEUE },
};

/** Errors every signed route may answer. */
const SIGNED_ERRORS = {
  400: {
    description: 'The body or query is not what the route takes (wrong type, bad domain or user name, invalid JSON, a __proto__ key).',
    schema: ERROR_BODY,
  },
  401: {
    description: 'Missing or wrong signature, timestamp outside ±300 s, or a replayed mutating request (AGENT_AUTH_FAILED, AGENT_REPLAYED). Nothing ran.',
    schema: ERROR_BODY,
  },
  408: { description: 'The body did not arrive within agent.limits.bodyTimeoutMs; the connection is closed. Nothing ran.', schema: ERROR_BODY },
  413: { description: 'Body larger than agent.maxBodyBytes. Nothing ran.', schema: ERROR_BODY },
  429: {
    description:
      'Per-token rate limit (Retry-After gives the seconds): agent.rateLimit.perSecond/burst for calls that change something, readPerSecond/readBurst for read-only ones. /ssl/issue-async is never refused for it (queued).',
    schema: ERROR_BODY,
  },
  503: {
    description: 'AGENT_BUSY: the agent is receiving agent.limits.bodyBytesInFlight of request bodies already; send again in a moment. Nothing ran.',
    schema: ERROR_BODY,
  },
};

const obj = (properties: Record<string, Schema>, required: string[]): Schema => ({ type: 'object', properties, required });
/** A request body: the listed keys required, the others optional. */
const body = <P extends Record<string, TSchema>>(properties: P, required: Array<keyof P & string>) =>
  Type.Object(Object.fromEntries(Object.entries(properties).map(([k, v]) => [k, required.includes(k) ? v : Type.Optional(v)])));

export const ROUTES: RouteSpec[] = [
  {
    id: 'health',
    method: 'GET',
    url: '/health',
    group: 'health',
    summary: 'Liveness and the host (the only unsigned route)',
    description: 'What the Opterius panel reads when an admin opens the server page: os and version (the OS version).',
    signed: false,
    mutating: false,
    responses: {
      200: {
        description: 'The agent runs.',
        schema: obj(
          {
            status: { type: 'string' },
            os: { type: 'string' },
            version: { type: 'string' },
            arch: { type: 'string' },
            hostname: { type: 'string' },
            uptime: { type: 'string' },
            agent_version: { type: 'string' },
            queue: QUEUE,
          },
          ['status', 'os', 'version', 'arch', 'hostname', 'uptime'],
        ),
      },
    },
  },
  {
    id: 'ssl.status',
    method: 'POST',
    url: '/ssl/status',
    group: 'opterius',
    summary: 'Whether a domain is served with a valid certificate, until when, and why not',
    description: 'Fast: the panel calls it for every domain on every page load. Reads only.',
    signed: true,
    mutating: false,
    body: body({ domain: DOMAIN }, ['domain']),
    responses: { 200: { description: "The domain's certificate as nginx serves it now.", schema: CERTIFICATE }, ...SIGNED_ERRORS },
  },
  {
    id: 'ssl.issue-async',
    method: 'POST',
    url: '/ssl/issue-async',
    group: 'opterius',
    summary: "Queue a Let's Encrypt certificate for a domain (HTTP-01)",
    description:
      'Answers at once. Requests arriving within agent.batchWindowMs of each other join one batch job. Poll /ssl/status (or /v1/jobs/{id}, or listen on /v1/events). Never refused for the rate limit: queued, up to agent.maxQueued domains (the answer, /health and /v1/jobs report the queue).',
    signed: true,
    mutating: true,
    queued: true,
    body: body({ domain: DOMAIN, email: EMAIL, username: USERNAME }, ['domain']),
    responses: {
      202: { description: 'Queued (or already queued: the same job id).', schema: ACCEPTED },
      200: {
        description: 'Already served by a valid wildcard certificate covering it: nothing to order.',
        schema: obj({ status: { type: 'string' }, domain: { type: 'string' } }, ['status']),
      },
      ...SIGNED_ERRORS,
      503: { description: 'AGENT_QUEUE_FULL: agent.maxQueued domains wait already (Retry-After gives the seconds). Nothing was queued.', schema: ERROR_BODY },
    },
  },
  {
    id: 'ssl.renew',
    method: 'POST',
    url: '/ssl/renew',
    group: 'opterius',
    summary: "Renew a domain's certificate now",
    description:
      "Synchronous within agent.syncTimeoutMs (the panel waits 120 s); past it, 202 with the job id. A certificate issued less than a day ago is not ordered again (Let's Encrypt's duplicate limit). An uploaded certificate is refused: upload the renewed one.",
    signed: true,
    mutating: true,
    body: body({ domain: DOMAIN }, ['domain']),
    responses: {
      200: { description: 'Renewed (or reused) and served.', schema: CERTIFICATE },
      202: { description: 'Still running after agent.syncTimeoutMs.', schema: ACCEPTED },
      409: {
        description:
          'An uploaded certificate (CERT_CUSTOM), the domain is being issued now (JOB_RUNNING), or its certificate was issued less than a day ago and is served (CERT_RECENTLY_ISSUED: the error says when, and its serial): nothing was renewed.',
        schema: ERROR_BODY,
      },
      422: { description: 'The renewal was tried and failed (the code says why: CERTBOT_FAILED, NGINX_TEST_FAILED...). Nothing changed.', schema: ERROR_BODY },
      ...SIGNED_ERRORS,
    },
  },
  {
    id: 'ssl.delete',
    method: 'POST',
    url: '/ssl/delete',
    group: 'opterius',
    summary: 'Take HTTPS off a domain and delete its certificate',
    description:
      "The vhost goes back to plain HTTP (validated with nginx -t, rolled back on failure), then `certbot delete` (or the upload's files) when no other block serves the certificate.",
    signed: true,
    mutating: true,
    body: body({ domain: DOMAIN, username: USERNAME }, ['domain']),
    responses: {
      200: {
        description: 'Done.',
        schema: obj(
          {
            status: { type: 'string' },
            domain: { type: 'string' },
            files: { type: 'array', items: { type: 'string' } },
            deleted: { type: 'array', items: { type: 'string' } },
            kept: { type: 'array' },
            notes: { type: 'array', items: { type: 'string' } },
          },
          ['status'],
        ),
      },
      404: { description: 'No server block answers the domain.', schema: ERROR_BODY },
      409: {
        description: 'Still being issued after agent.syncTimeoutMs (a delete during an issue waits for its run to end, then deletes).',
        schema: ERROR_BODY,
      },
      422: { description: 'The vhost has no HTTP-only form autossl can return it to, or nginx refused the change (restored).', schema: ERROR_BODY },
      ...SIGNED_ERRORS,
    },
  },
  {
    id: 'ssl.upload',
    method: 'POST',
    url: '/ssl/upload',
    group: 'opterius',
    summary: 'Install a certificate bought elsewhere',
    description:
      'PEM parsed, key matches, names cover the domain, not expired, chain in order: all checked before anything is written. The key is written 0600; never renewed.',
    signed: true,
    mutating: true,
    body: body(
      {
        domain: DOMAIN,
        username: USERNAME,
        certificate: Type.String({ maxLength: 65536, description: 'PEM: the server certificate, then its chain.' }),
        private_key: Type.String({ maxLength: 65536, description: 'PEM, unencrypted.' }),
      },
      ['domain', 'certificate', 'private_key'],
    ),
    responses: {
      200: { description: 'Installed and served.', schema: CERTIFICATE },
      ...SIGNED_ERRORS,
      400: {
        description:
          'The body is not what the route takes, or the upload is not usable (UPLOAD_INVALID says why: not PEM, the key of another certificate, expired, names not covering the domain). Nothing was written.',
        schema: ERROR_BODY,
      },
      409: {
        description: 'The server block also serves names over HTTPS the upload does not cover (VHOST_CERT_CONFLICT), or the domain is being issued now.',
        schema: ERROR_BODY,
      },
    },
  },
  {
    id: 'ssl.wildcard.start',
    method: 'POST',
    url: '/ssl/wildcard/start',
    group: 'opterius',
    summary: 'Order *.domain + domain over DNS-01 and install it on the domain and its subdomain blocks',
    description:
      'Needs a DNS-01 provider plugin (refused with DNS_PROVIDER_MISSING otherwise). Subdomain blocks serving an uploaded certificate keep it. Progress: GET /ssl/wildcard/progress.',
    signed: true,
    mutating: true,
    body: body({ domain: DOMAIN, email: EMAIL, username: USERNAME }, ['domain']),
    responses: { 202: { description: 'Started (or already running: the same job id).', schema: ACCEPTED }, ...SIGNED_ERRORS },
  },
  {
    id: 'ssl.wildcard.progress',
    method: 'GET',
    url: '/ssl/wildcard/progress',
    group: 'opterius',
    summary: 'Where a wildcard issuance is',
    description:
      'Always 200 with a JSON object (the panel shows anything else as "Agent unreachable"). step ≤ 30 characters, message and error ≤ 255 (the panel\'s columns). The query is not signed, as the panel signs the path only; it is read-only.',
    signed: true,
    mutating: false,
    query: Type.Object({ domain: Type.Optional(Type.String({ maxLength: 300 })) }),
    responses: {
      200: {
        description: 'The step.',
        schema: obj(
          {
            step: { type: 'string', enum: ['starting', 'dns_challenge', 'dns_propagation', 'le_verify', 'installing', 'done', 'error'] },
            message: { type: 'string', maxLength: 255 },
            error: { type: 'string', maxLength: 255 },
            job_id: { type: 'string' },
          },
          ['step', 'message'],
        ),
      },
      ...SIGNED_ERRORS,
    },
  },
  {
    id: 'v1.issue',
    method: 'POST',
    url: '/v1/issue',
    group: 'native',
    summary: 'Issue certificates for many sites as one job',
    description:
      "Starts at once. Each site may carry its own settings (aliases, document root, redirect, HSTS, DNS-01 for wildcards), validated like the config file's sites and kept for renewals.",
    signed: true,
    mutating: true,
    body: Type.Object({
      domains: Type.Optional(Type.Array(Type.String({ maxLength: 300 }), { maxItems: 1000 })),
      // a site as the config file has it (src/config/keys.ts), with the panel's user name for agent.documentRoot
      sites: Type.Optional(
        Type.Array(
          Type.Object(
            {
              domain: DOMAIN,
              aliases: Type.Optional(Type.Array(Type.String({ maxLength: 300 }), { maxItems: 100 })),
              username: Type.Optional(USERNAME),
              documentRoot: Type.Optional(Type.String({ maxLength: 4096 })),
              redirect: SiteProperties.redirect,
              hsts: SiteProperties.hsts,
              challenge: SiteProperties.challenge,
            },
            { additionalProperties: false },
          ),
          { maxItems: 1000 },
        ),
      ),
      force: Type.Optional(Type.Boolean()),
    }),
    responses: {
      202: {
        description: 'The job.',
        schema: obj({ job_id: { type: 'string' }, domains: { type: 'array', items: { type: 'string' } } }, ['job_id', 'domains']),
      },
      ...SIGNED_ERRORS,
    },
  },
  {
    id: 'v1.jobs',
    method: 'GET',
    url: '/v1/jobs',
    group: 'native',
    summary: 'Recent jobs, newest first',
    description: "Each with every domain's state, error code and stage timings.",
    signed: true,
    mutating: false,
    query: Type.Object({ limit: Type.Optional(Type.String({ pattern: '^[0-9]{1,3}$' })) }),
    responses: { 200: { description: 'The jobs.', schema: obj({ jobs: { type: 'array', items: JOB }, queue: QUEUE }, ['jobs', 'queue']) }, ...SIGNED_ERRORS },
  },
  {
    id: 'v1.job',
    method: 'GET',
    url: '/v1/jobs/:id',
    group: 'native',
    summary: 'One job',
    description: 'A job accepted by /ssl/issue-async is recorded before the 202, so it is here at once.',
    signed: true,
    mutating: false,
    params: Type.Object({ id: Type.String({ maxLength: 64, pattern: '^[A-Za-z0-9-]+$' }) }),
    responses: { 200: { description: 'The job.', schema: JOB }, 404: { description: 'No such job.', schema: ERROR_BODY }, ...SIGNED_ERRORS },
  },
  {
    id: 'v1.certificates',
    method: 'GET',
    url: '/v1/certificates',
    group: 'native',
    summary: 'Every certificate and configured name, most urgent first',
    description: 'What `autossl status --json` says.',
    signed: true,
    mutating: false,
    responses: {
      200: {
        description: 'The report.',
        schema: obj(
          {
            attention: { type: 'boolean' },
            certificates: { type: 'array', items: { type: 'object' } },
            warnings: {
              type: 'array',
              items: { type: 'object' },
              description: 'Configuration nginx warns about on every reload: STAPLING_WITHOUT_OCSP (ssl_stapling on for a certificate without an OCSP URL).',
            },
          },
          ['attention', 'certificates'],
        ),
      },
      ...SIGNED_ERRORS,
    },
  },
  {
    id: 'v1.events',
    method: 'GET',
    url: '/v1/events',
    group: 'native',
    summary: 'Job progress as server-sent events',
    description:
      'text/event-stream: events "job" (a job starts or ends), "domain" (a domain ends: done or failed, with the code) and "stage" (a domain enters a stage), each a JSON object with job_id; a comment line every 15 s keeps the connection open.',
    signed: true,
    mutating: false,
    responses: { 200: { description: 'The event stream (text/event-stream).' }, ...SIGNED_ERRORS },
  },
  {
    id: 'v1.openapi',
    method: 'GET',
    url: '/v1/openapi.json',
    group: 'native',
    summary: 'This document',
    description: 'OpenAPI 3.1, built from the same table the server registers its routes from.',
    signed: true,
    mutating: false,
    responses: { 200: { description: 'The document.' }, ...SIGNED_ERRORS },
  },
];

/** A schema as JSON: without TypeBox's symbols and the config's own annotations (`expected`, `pathKind`...). */
function plain(schema: Schema): Schema {
  return JSON.parse(JSON.stringify(schema, (key, value: unknown) => ((ANNOTATIONS as readonly string[]).includes(key) ? undefined : value))) as Schema;
}

/** The OpenAPI 3.1 document of the routes. */
export function openapiDocument(version: string): Record<string, unknown> {
  const paths: Record<string, Record<string, unknown>> = {};
  for (const r of ROUTES) {
    const oaPath = r.url.replace(/:([A-Za-z]+)/g, '{$1}');
    const parameters: unknown[] = [];
    for (const [where, schema] of [
      ['query', r.query],
      ['path', r.params],
    ] as const) {
      const props = (schema?.properties ?? {}) as Record<string, TSchema>;
      const required = (schema?.required ?? []) as string[];
      for (const [name, s] of Object.entries(props))
        parameters.push({ name, in: where, required: where === 'path' || required.includes(name), schema: plain(s) });
    }
    paths[oaPath] ??= {};
    paths[oaPath]![r.method.toLowerCase()] = {
      operationId: r.id,
      tags: [r.group],
      summary: r.summary,
      description: r.description,
      ...(r.signed ? { security: [{ signature: [], timestamp: [] }] } : { security: [] }),
      ...(parameters.length ? { parameters } : {}),
      ...(r.body ? { requestBody: { required: true, content: { 'application/json': { schema: plain(r.body) } } } } : {}),
      responses: Object.fromEntries(
        Object.entries(r.responses).map(([code, resp]) => [
          code,
          { description: resp.description, ...(resp.schema ? { content: { 'application/json': { schema: plain(resp.schema) } } } : {}) },
        ]),
      ),
    };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'autossl agent',
      version,
      description:
        "The signed HTTP API a hosting panel drives: the Opterius panel's agent calls (/health, /ssl/...) and autossl's own (/v1/...). Every route but /health is signed: X-Timestamp (RFC 3339, within 300 s) and X-Signature = lowercase hex HMAC-SHA256(token, timestamp + METHOD + path without query + raw body).",
    },
    components: {
      securitySchemes: {
        signature: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Signature',
          description: 'Lowercase hex HMAC-SHA256(token, X-Timestamp + METHOD + path-without-query + raw body).',
        },
        timestamp: {
          type: 'apiKey',
          in: 'header',
          name: 'X-Timestamp',
          description: "RFC 3339, e.g. 2026-05-01T12:00:00+00:00; at most 300 s from the agent's clock.",
        },
      },
    },
    paths,
  };
}
