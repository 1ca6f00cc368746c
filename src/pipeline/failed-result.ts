/**
 * The result of a domain that failed before (or without) its run: bad input, a batch process that ended. Nothing
 * was done for it, but it is accounted for like any other domain. Its own small module: the agent's main process
 * uses it without loading the pipeline.
 */
import { toAutoSslError } from '../errors.js';
import type { RunMode } from './context.js';
import type { DomainResult } from './pipeline.js';

export function failedResult(input: unknown, mode: RunMode, error: unknown): DomainResult {
  return {
    domain: String(input),
    mode,
    names: [],
    ok: false,
    error: toAutoSslError(error),
    reused: false,
    edits: [],
    files: [],
    rolledBack: [],
    notes: [],
    events: [],
    ms: 0,
  };
}
