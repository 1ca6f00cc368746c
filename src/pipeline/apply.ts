import type { FileEdit } from '../nginx/edit.js';
import type { DomainContext } from './context.js';

/** Records planned edits on the context and, unless this is a dry run, writes them through its transaction. */
export async function applyEdits(ctx: DomainContext, edits: readonly FileEdit[]): Promise<void> {
  for (const edit of edits) {
    ctx.edits.push(edit);
    if (!ctx.dryRun) await ctx.transaction.write(edit.file, edit.before, edit.after);
  }
  if (edits.length) ctx.needsReload = true;
}
