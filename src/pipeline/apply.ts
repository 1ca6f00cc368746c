import type { FileEdit } from '../installer/installer.js';
import type { DomainContext } from './context.js';

/**
 * Applies edits planned by `plan` for this domain through the installer: for real under the config lock (planned
 * against the files as they are then, written through the domain's transaction, validated with nginx -t), or in a
 * dry run on the in-memory overlay, so later stages plan on top of what earlier ones would have written. `plan`
 * gets the installer's own config snapshot (hand it to the installer's planners).
 */
export function applyEdits(ctx: DomainContext, plan: (config: unknown) => FileEdit[]): Promise<FileEdit[]> {
  return ctx.services.installer.apply(ctx, plan);
}
