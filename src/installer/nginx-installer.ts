/**
 * nginx as the Installer: the config tree nginx itself loads (include globs followed, byte positions kept), the
 * byte-exact editor with its `nginx -t` under the config lock, the coalesced reload, and the SNI check.
 */
import path from 'node:path';
import type { AutoSslConfig } from '../config/schema.js';
import { AutoSslError } from '../errors.js';
import type { DomainContext } from '../pipeline/context.js';
import { NginxControl } from '../nginx/control.js';
import { ConfigEditor } from '../nginx/editor.js';
import { EditTransaction } from '../nginx/transaction.js';
import { discardJournal, pendingRecovery, recoverJournals, type RecoveryReport } from '../nginx/journal-recovery.js';
import { lockBlocks } from '../nginx/block-lock.js';
import type { HeldLock, Locker } from '../store/locker.js';
import { locateServers, planChallengeEdit, planHttpsEdit, vhostEditFor, type FileEdit } from '../nginx/edit.js';
import { ensureAliasLink } from '../nginx/alias-webroot.js';
import { NginxTree, type ServerBlock } from '../nginx/tree.js';
import { argValues, childDirectives, lineColumn } from '../nginx/parse.js';
import { challengeRouting, routeEnv } from '../nginx/routing.js';
import { crossHostHops } from '../nginx/redirect-hops.js';
import { certificateBlock, referencedPaths, servedCertificatePath, sslCertificateLines } from '../nginx/locate.js';
import { planUninstall } from '../nginx/uninstall.js';
import { planNames } from '../nginx/plan-names.js';
import { lostCover, servedCover, uploadCover } from '../nginx/block-cover.js';
import { answeredNames, uncovered } from '../nginx/names.js';
import { serverView } from '../nginx/view.js';
import { servedSerial } from './sni.js';
import { isPlainHttp, type Listen } from '../nginx/listen.js';
import { nginxLoadedAt } from '../nginx/loaded-at.js';
import { staplingWithoutOcsp } from '../nginx/stapling.js';
import type { BlockInfo, CertificateRef, Installer, LocatedBlocks, SiteBlock, TlsBlock } from './installer.js';

/** The nginx installer of a config: its nginx, its config lock (shared by every autossl process), its journals. */
export function createNginxInstaller(config: AutoSslConfig): NginxInstaller {
  const nginx = new NginxControl({
    binary: config.nginx.binary,
    config: config.nginx.config,
    reloadCommand: config.nginx.reloadCommand,
    extraArgs: config.nginx.extraArgs,
  });
  const loadTree = (overlay?: ReadonlyMap<string, string>): NginxTree => NginxTree.load(config.nginx.config, overlay?.size ? { overlay } : {});
  const editor = new ConfigEditor({
    lockFile: path.join(config.stateDir, 'locks', 'nginx-config.lock'),
    lockTimeoutMs: config.nginx.lockTimeoutMs,
    nginx,
    loadTree: () => loadTree(),
  });
  nginx.setReloadLock((fn) => editor.locked(fn));
  return new NginxInstaller(config, nginx, editor, loadTree, path.join(config.stateDir, 'journal'));
}

export class NginxInstaller implements Installer<NginxTree> {
  readonly name = 'nginx';

  constructor(
    private readonly config: AutoSslConfig,
    /** nginx itself and the config editor: kept on Services for plugins written before the Installer. */
    readonly nginx: NginxControl,
    readonly editor: ConfigEditor,
    readonly loadTree: (overlay?: ReadonlyMap<string, string>) => NginxTree,
    private readonly journalDir: string,
  ) {}

  transaction(label: string): EditTransaction {
    return new EditTransaction({ journalDir: this.journalDir, label });
  }

  async lockBlocks(locker: Locker, names: readonly string[], vhostFile?: string): Promise<HeldLock | null> {
    let tree: NginxTree;
    try {
      tree = this.loadTree();
    } catch {
      return null; // planning says what is wrong with the config
    }
    return lockBlocks(locker, this.config, tree, names, vhostFile);
  }

  recover(): Promise<RecoveryReport> {
    return this.editor.locked(() => recoverJournals(this.journalDir));
  }

  pendingRecovery(): Promise<RecoveryReport & { restorable: string[] }> {
    return pendingRecovery(this.journalDir);
  }

  discardJournal(journal: string): Promise<void> {
    return discardJournal(this.journalDir, journal);
  }

  load(overlay?: ReadonlyMap<string, string>): NginxTree {
    return this.loadTree(overlay);
  }

  locate(tree: NginxTree, names: readonly string[], options: { vhostFile?: string } = {}): LocatedBlocks {
    const located = locateServers(tree, names, options);
    const views = (m: Map<string, ServerBlock | null>): Map<string, BlockInfo | null> => new Map([...m].map(([name, s]) => [name, s ? blockInfo(s) : null]));
    return { http: views(located.http), https: views(located.https) };
  }

  blocksFor(tree: NginxTree, name: string): { http: BlockInfo[]; https: BlockInfo[] } {
    const found = tree.findServers(name);
    return { http: found.http.map(blockInfo), https: found.https.map(blockInfo) };
  }

  certificatePaths: Installer<NginxTree>['certificatePaths'] = (tree) => sslCertificateLines(tree);

  servedFiles(tree: NginxTree, name: string): ReturnType<Installer<NginxTree>['servedFiles']> {
    const found = tree.findServers(name);
    const block = found.https[0];
    const certificates: CertificateRef[] = [];
    let variable = false;
    for (const d of block ? serverView(block).directives : []) {
      if (d.name !== 'ssl_certificate' || !d.args[0]) continue;
      if (d.args[0].includes('$')) variable = true;
      else if (!d.args[0].startsWith('data:'))
        certificates.push({ path: path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0]), file: d.file, line: d.line });
    }
    const endpoint = block ? this.endpointOf(block) : null;
    return { answered: found.http.length + found.https.length > 0, block: block ? blockInfo(block) : null, endpoint, certificates, variable };
  }

  ownCertificate(tree: NginxTree, name: string): string | null {
    const block = tree.findServers(name).https[0];
    return block ? servedCertificatePath(tree, block) : null;
  }

  lostCover(tree: NginxTree, name: string, certNames: readonly string[], known: readonly string[]): { names: string[]; patterns: string[] } {
    const block = tree.findServers(name).https[0];
    return block ? lostCover(servedCover(tree, block, known), certNames) : { names: [], patterns: [] };
  }

  referencedFiles(tree: NginxTree): Set<string> {
    return referencedPaths(tree);
  }

  planNames: Installer<NginxTree>['planNames'] = (tree, plan, lineages) => planNames(this.config, tree, plan, lineages);

  planUninstall: Installer<NginxTree>['planUninstall'] = (tree, domain, options) => planUninstall(tree, domain, options);

  uploadTarget(
    tree: NginxTree,
    domain: string,
    uploadNames: readonly string[],
    options: { vhostFile?: string; known?: readonly string[] },
  ): { block: BlockInfo; names: string[]; lost: string[] } {
    const located = locateServers(tree, [domain], { vhostFile: options.vhostFile });
    const block = located.https.get(domain) ?? located.http.get(domain) ?? null;
    if (!block) throw new AutoSslError('VHOST_NOT_FOUND', `No server block answers ${domain}.`);
    return { block: blockInfo(block), ...uploadCover(tree, block, domain, uploadNames, options.known) };
  }

  edit(tx: EditTransaction, label: string, plan: (tree: NginxTree) => FileEdit[]): Promise<FileEdit[]> {
    return this.editor.apply({ tx, label, plan });
  }

  revertTransaction(tx: EditTransaction): Promise<string[]> {
    return this.editor.revert(tx);
  }

  tlsBlocks(tree: NginxTree): TlsBlock[] {
    const out: TlsBlock[] = [];
    for (const block of tree.servers) {
      const endpoint = this.endpointOf(block);
      if (!endpoint) continue;
      const certificates: CertificateRef[] = [];
      for (const d of serverView(block).directives) {
        if (d.name !== 'ssl_certificate' || !d.args[0] || d.args[0].includes('$')) continue;
        certificates.push({ path: path.isAbsolute(d.args[0]) ? d.args[0] : path.join(tree.prefix, d.args[0]), file: d.file, line: d.line });
      }
      out.push({ block: blockInfo(block), endpoint, certificates });
    }
    return out;
  }

  /** Where to connect to a block over TLS: its first TLS listen (a wildcard address on loopback, [::] on ::1); null: it has none. */
  private endpointOf(block: ServerBlock): { host: string; port: number } | null {
    const tls = block.listens.find((l: Listen) => l.ssl && !l.unix && !isPlainHttp(l));
    return tls
      ? { host: tls.host === '*' ? '127.0.0.1' : tls.host === '[::]' ? '::1' : tls.host.replace(/^\[|\]$/g, ''), port: tls.port ?? this.config.nginx.httpsPort }
      : null;
  }

  loadedAt(tree: NginxTree): number | null {
    return nginxLoadedAt(tree);
  }

  configWarnings(tree: NginxTree): ReturnType<typeof staplingWithoutOcsp> {
    return staplingWithoutOcsp(tree);
  }

  configErrors(tree: NginxTree): string[] {
    return tree.errors.map((e) => e.message);
  }

  sites(tree: NginxTree, accept: (raw: string) => string | null): SiteBlock[] {
    const sites = new Map<ServerBlock, SiteBlock>();
    const seen = new Set<string>();
    for (const server of tree.servers) {
      for (const raw of server.names) {
        const name = accept(raw);
        if (!name || seen.has(name)) continue;
        const block = certificateBlock(tree, name);
        if (!block) continue;
        seen.add(name);
        const site = sites.get(block);
        if (site) site.names.push(name);
        else
          sites.set(block, {
            names: [name],
            block: blockInfo(block),
            root: rootOf(block) ?? rootOf(server),
            certificate: block.listens.some((l) => l.ssl) ? servedCertificatePath(tree, block) : null,
            answered: () => [...answeredNames(tree, block, 'https').exact, ...answeredNames(tree, block, 'http').exact],
          });
      }
    }
    return [...sites.values()];
  }

  uncoveredNames(tree: NginxTree, names: readonly string[], vhostFile?: string): Array<{ block: BlockInfo; names: string[] }> {
    const out: Array<{ block: BlockInfo; names: string[] }> = [];
    const seen = new Set<ServerBlock>();
    for (const n of names) {
      const block = certificateBlock(tree, n, vhostFile);
      if (!block || seen.has(block)) continue;
      seen.add(block);
      const left = uncovered(answeredNames(tree, block, 'http'), names);
      if (left.length) out.push({ block: blockInfo(block), names: left });
    }
    return out;
  }

  challengeRoute(tree: NginxTree, name: string): ReturnType<Installer<NginxTree>['challengeRoute']> {
    const server = tree.findServers(name).http[0];
    if (!server) return { block: null, served: false, reason: '' };
    const routing = challengeRouting(server, name, 'http', routeEnv(tree));
    return { block: blockInfo(server), served: routing.served, webroot: routing.webroot, reason: routing.reason };
  }

  challengeRedirects: Installer<NginxTree>['challengeRedirects'] = (tree, name) => crossHostHops(tree, name);

  planChallenge: Installer<NginxTree>['planChallenge'] = (tree, names, options) => planChallengeEdit(tree, names, options);

  async prepareChallenge(plan: { link?: { path: string; target: string } }): Promise<void> {
    if (plan.link) await ensureAliasLink(plan.link); // certbot writes where the existing alias location reads
  }

  tlsEdit(ctx: DomainContext): ReturnType<typeof vhostEditFor> {
    return vhostEditFor(ctx);
  }

  planTls: Installer<NginxTree>['planTls'] = (tree, edit, options) =>
    planHttpsEdit(tree, edit, { nginxVersion: options.serverVersion, httpsPort: options.httpsPort, keepCertificatesUnder: options.keepCertificatesUnder });

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

/** A server block as the Installer's callers see it: where it is, its names, its sockets. */
function blockInfo(s: ServerBlock): BlockInfo {
  let line: number | undefined;
  return {
    file: s.file,
    // counted when asked (status asks for thousands of blocks and names the line of a few)
    get line(): number {
      return (line ??= lineColumn(s.config.source, s.directive.start).line);
    },
    serverNames: s.names,
    sockets: s.listens.map((l) => `${l.socket}${l.ssl ? ' ssl' : ''}`),
  };
}

/** A block's own document root, when a plain absolute path. */
function rootOf(block: ServerBlock): string | undefined {
  const root = childDirectives(block.directive, 'root')
    .map((d) => argValues(d)[0])
    .pop();
  return root && root.startsWith('/') && !root.includes('$') ? root : undefined;
}
