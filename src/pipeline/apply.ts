import type { FileEdit } from '../nginx/edit.js';
import type { NginxTree } from '../nginx/tree.js';
import type { DomainContext } from './context.js';

/**
 * Applies edits planned by `plan` for this domain: for real through the config editor (planned against the files
 * as they are under the config lock, written through the domain's transaction, validated with nginx -t), or in a
 * dry run on the in-memory overlay, so later stages plan on top of what earlier ones would have written.
 */
export async function applyEdits(ctx: DomainContext, plan: (tree: NginxTree) => FileEdit[]): Promise<FileEdit[]> {
  let edits: FileEdit[];
  if (ctx.dryRun) {
    edits = plan(ctx.services.loadTree(ctx.overlay));
    for (const e of edits) ctx.overlay.set(e.file, e.after);
  } else {
    edits = await ctx.services.editor.apply({ tx: ctx.transaction, label: ctx.domain, plan });
  }
  ctx.edits.push(...edits);
  if (edits.length) ctx.needsReload = true;
  return edits;
}
