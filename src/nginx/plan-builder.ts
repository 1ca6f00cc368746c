/** The plan's unit: one file's edit as before/after text, built from splices grouped per file and verified. */
import type { ParsedConfig } from './parse.js';
import { spliceAndVerify, type Splice } from './splice.js';

export interface FileEdit {
  file: string;
  before: string;
  after: string;
  changes: string[];
}

/** Groups splices by file, splices and verifies each file. */
export class PlanBuilder {
  private readonly splices = new Map<string, { config: ParsedConfig; list: Splice[] }>();
  add(config: ParsedConfig, splice: Splice | null): void {
    if (!splice) return;
    const entry = this.splices.get(config.file) ?? { config, list: [] };
    entry.list.push(splice);
    this.splices.set(config.file, entry);
  }
  build(): FileEdit[] {
    const edits: FileEdit[] = [];
    for (const { config, list } of this.splices.values()) {
      const after = spliceAndVerify(config, list);
      if (after !== config.source) edits.push({ file: config.file, before: config.source, after, changes: list.map((s) => s.why) });
    }
    return edits;
  }
}
