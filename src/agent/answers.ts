/**
 * What the agent answers with, apart from the routes: the HTTP status of each error code, the JSON body parser every
 * route's body goes through (no key that could reach a prototype), the error reply `{error, code, hint}`, and the
 * package's version (the /health answer and the OpenAPI document).
 */
import fs from 'node:fs';
import path from 'node:path';
import type { FastifyReply } from 'fastify';
import { AutoSslError, errorKind, isAutoSslError, type ErrorCode } from '../errors.js';

export function packageVersion(): string {
  let dir = path.dirname(new URL(import.meta.url).pathname);
  for (let i = 0; i < 5; i++) {
    try {
      const pkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { name?: string; version?: string };
      if (pkg.name === 'autossl' && pkg.version) return pkg.version;
    } catch {
      // keep looking
    }
    dir = path.dirname(dir);
  }
  return '0.0.0';
}

/** HTTP status of an error: refusals are 4xx; only autossl's own failures and missing services are 5xx. */
export function statusOf(code: ErrorCode): number {
  switch (code) {
    case 'AGENT_AUTH_FAILED':
    case 'AGENT_REPLAYED':
      return 401;
    case 'AGENT_RATE_LIMITED':
    case 'RATE_LIMITED':
      return 429;
    case 'AGENT_NOT_FOUND':
    case 'VHOST_NOT_FOUND':
    case 'JOB_NOT_FOUND':
      return 404;
    case 'AGENT_STOPPING':
      return 409;
    case 'VHOST_UNSUPPORTED':
      return 422;
  }
  switch (errorKind(code)) {
    case 'input':
      return 400;
    case 'conflict':
      return 409;
    case 'failed':
      return 422;
    case 'unavailable':
      return 503;
    default:
      return 500;
  }
}

const POISON = new Set(['__proto__', 'constructor', 'prototype']);

/** The body as JSON: an object, without keys that could reach a prototype. */
export function parseBody(raw: Buffer): Record<string, unknown> {
  if (!raw.length) return {};
  let value: unknown;
  try {
    value = JSON.parse(raw.toString('utf8'), (key, v: unknown) => {
      if (POISON.has(key)) throw new AutoSslError('AGENT_BAD_REQUEST', `The body has a "${key}" key; it is refused.`);
      return v;
    });
  } catch (error) {
    if (isAutoSslError(error)) throw error;
    throw new AutoSslError('AGENT_BAD_REQUEST', `The body is not valid JSON: ${(error as Error).message.slice(0, 200)}.`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new AutoSslError('AGENT_BAD_REQUEST', 'The body must be a JSON object.');
  return value as Record<string, unknown>;
}

export function sendError(reply: FastifyReply, error: AutoSslError, extraHeaders: Record<string, string> = {}): FastifyReply {
  for (const [k, v] of Object.entries(extraHeaders)) reply.header(k, v);
  return reply.code(statusOf(error.code)).type('application/json').send({ error: error.message, code: error.code, hint: error.hint });
}
