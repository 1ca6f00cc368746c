/**
 * Bookkeeping in `finally` (the attempt, the back-off) must not turn a served certificate into a failure, nor a
 * failure into another one: another process holding the database past the wait, a full disk... the run's outcome
 * stands, and a warning says what was not recorded.
 */
import { toAutoSslError } from '../errors.js';
import type { DomainContext } from '../pipeline/context.js';

export async function recordOrWarn(ctx: DomainContext, plugin: string, record: () => Promise<void>, notRecorded: (reason: string) => string): Promise<void> {
  try {
    await record();
  } catch (error) {
    ctx.emit({ stage: 'finally', plugin, status: 'warning', message: `STATE_UNAVAILABLE: ${notRecorded(toAutoSslError(error).message.slice(0, 300))}` });
  }
}
