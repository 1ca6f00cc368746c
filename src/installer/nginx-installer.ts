/**
 * nginx as the Installer: the config tree nginx itself loads (include globs followed, byte positions kept), the
 * byte-exact editor with its `nginx -t` under the config lock, the coalesced reload, and the SNI check.
 */
import type { DomainContext } from '../pipeline/context.js';
import type { NginxControl } from '../nginx/control.js';
import type { ConfigEditor } from '../nginx/editor.js';
import { locateServers, planChallengeEdit, planHttpsEdit, vhostEditFor, type FileEdit } from '../nginx/edit.js';
import { ensureAliasLink } from '../nginx/alias-webroot.js';
import type { NginxTree, ServerBlock } from '../nginx/tree.js';
import { lineColumn } from '../nginx/parse.js';
import { servedSerial } from './sni.js';
import type { BlockInfo, Installer, LocatedBlocks } from './installer.js';

export class NginxInstaller implements Installer<NginxTree> {
  readonly name = 'nginx';

  constructor(
    private readonly nginx: NginxControl,
    private readonly editor: ConfigEditor,
    private readonly loadTree: (overlay?: ReadonlyMap<string, string>) => NginxTree,
  ) {}

  load(overlay?: ReadonlyMap<string, string>): NginxTree {
    return this.loadTree(overlay);
  }

  locate(tree: NginxTree, names: readonly string[], options: { vhostFile?: string } = {}): LocatedBlocks {
    const located = locateServers(tree, names, options);
    const views = (m: Map<string, ServerBlock | null>): Map<string, BlockInfo | null> =>
      new Map([...m].map(([name, s]) => [name, s ? { file: s.file, line: lineColumn(s.config.source, s.directive.start).line, serverNames: s.names, sockets: s.listens.map((l) => `${l.socket}${l.ssl ? ' ssl' : ''}`) } : null]));
    return { http: views(located.http), https: views(located.https) };
  }

  planChallenge: Installer<NginxTree>['planChallenge'] = (tree, names, options) => planChallengeEdit(tree, names, options);

  async prepareChallenge(plan: { link?: { path: string; target: string } }): Promise<void> {
    if (plan.link) await ensureAliasLink(plan.link); // certbot writes where the existing alias location reads
  }

  tlsEdit(ctx: DomainContext): ReturnType<typeof vhostEditFor> {
    return vhostEditFor(ctx);
  }

  planTls: Installer<NginxTree>['planTls'] = (tree, edit, options) => planHttpsEdit(tree, edit, { nginxVersion: options.serverVersion, httpsPort: options.httpsPort, keepCertificatesUnder: options.keepCertificatesUnder });

  version(): Promise<[number, number, number]> {
    return this.nginx.version();
  }

  async apply(ctx: DomainContext, plan: (tree: NginxTree) => FileEdit[]): Promise<FileEdit[]> {
    let edits: FileEdit[];
    if (ctx.dryRun) {
      edits = plan(this.loadTree(ctx.overlay));
      for (const e of edits) ctx.overlay.set(e.file, e.after);
    } else {
      // in a batch, wait for the others to reach this stage: one section, one nginx -t, one reload for all
      await ctx.batch?.gate(ctx);
      edits = await this.editor.apply({ tx: ctx.transaction, label: ctx.domain, plan });
    }
    ctx.edits.push(...edits);
    if (edits.length) ctx.needsReload = true;
    return edits;
  }

  revert(ctx: DomainContext): Promise<string[]> {
    return this.editor.revert(ctx.transaction);
  }

  test(options: { underConfigLock?: boolean } = {}): Promise<void> {
    return options.underConfigLock ? this.editor.locked(() => this.nginx.test()) : this.nginx.test();
  }

  reload(): Promise<void> {
    return this.nginx.reload();
  }

  served(endpoint: { host: string; port: number; servername: string }, timeoutMs?: number): Promise<string> {
    return servedSerial(endpoint.host, endpoint.port, endpoint.servername, timeoutMs);
  }
}
