#!/usr/bin/env node
/**
 * The command line: argument parsing, engine calls, output. It only parses and prints: all the work is the
 * engine's. Human output by default (one line per stage with its time), `--json` for machines.
 * Exit codes: 0 every domain succeeded, 1 some failed, 2 bad usage, bad input or bad config.
 * This file is the entry point (usage, option parsing, dispatch); the commands, by group, are in src/cli/.
 */
import fs from 'node:fs';
import { parseArgs } from 'node:util';
import { errorKind, toAutoSslError } from './errors.js';
import { CHECKS } from './stages/preflight.js';
import { engineFor, setCommand, type Values } from './cli/config.js';
import { err, out, printError } from './cli/output.js';
import { cmdCheck, cmdIssue } from './cli/issue.js';
import { cmdDeployHook, cmdHook, cmdRenew, cmdStatus } from './cli/renewal.js';
import { cmdUninstall, cmdUpload, cmdVhostShow } from './cli/vhosts.js';
import { cmdJobs, cmdRecover } from './cli/jobs.js';
import { cmdInit } from './cli/init.js';
import { cmdAgent, cmdAgentCall } from './cli/agent.js';

const USAGE = `autossl: trusted certificates for every nginx vhost

Usage:
  autossl init [--out FILE] [--force] [--dry-run] [--no-check] [--address IP] [--resolver IP[:PORT]]
                                                             write a config from what this server has and the sites nginx serves
  autossl setup [--agent] [--dry-run]                        certbot hooks, one renewal timer, and (--agent) the agent's unit
  autossl issue <domain...> [--dry-run] [--force] [--json]   issue (or reuse) and install certificates (one batch job)
  autossl issue --all [--dry-run] [--json] [--verbose]       every site in the config
  autossl jobs [JOB] [--json]                                recent batches, or one with each domain's state
  autossl check <domain...>|--all [--json]                   pre-flight only: what Let's Encrypt would see
  autossl status [--probe] [--json]                          every certificate and configured name, most urgent first (exit 1: needs attention)
  autossl renew [--cert-name NAME] [--force] [--json]        certbot renew now, each lineage's outcome recorded
  autossl renew --pass-only [--json]                         autossl's own pass only: back-off holds, revoked and ARI renewals (certbot.service runs it first)
  autossl install-hooks                                      make every certbot renewal run autossl's hooks
  autossl vhost show <domain> [--diff] [--json]              which file and block serve a domain, and the edit
  autossl recover [--discard JOURNAL] [--json]               finish what a killed run left behind
  autossl uninstall <domain> [--json]                        take HTTPS off a domain; delete its certificate if nothing else serves it
  autossl upload <domain> --cert FILE --key FILE [--json]    install a certificate bought elsewhere (never renewed)
  autossl agent                                              the signed HTTP API for a hosting panel (README "Agent")
  autossl agent call METHOD PATH [BODY] [--url URL]          send one signed request to the agent, print the answer
  autossl fleet run | status [--json]                        a node of a fleet: tokens, certificates, what it serves (README "Several nodes")
  autossl demo [--keep]                                      a self-contained demo on 127.0.0.1
  (run by certbot: autossl deploy-hook | renew-hook pre|post | dns-hook auth|cleanup | fleet hook auth|cleanup)

Options:
  --config FILE        config file (default: found by cosmiconfig, module name "autossl")
  --skip-check NAME    skip a pre-flight check: ${CHECKS.join(', ')} (repeatable)
  --json               machine-readable output (issue: one JSON event per line, then the summary)
  --verbose, -v        issue: every stage of every domain, not a progress line
`;

/** What runs each command (a name that is not a key here is an unknown command). */
const COMMANDS: Record<string, (rest: string[], values: Values) => Promise<number>> = {
  issue: cmdIssue,
  check: cmdCheck,
  status: (_, values) => cmdStatus(values),
  renew: (_, values) => cmdRenew(values),
  'deploy-hook': (_, values) => cmdDeployHook(values),
  'renew-hook': (rest, values) => cmdHook('renew-hook', rest, values),
  'dns-hook': (rest, values) => cmdHook('dns-hook', rest, values),
  fleet: async (rest, values) => (await import('./cli/fleet.js')).cmdFleet(rest, values),
  'install-hooks': async (_, values) => {
    const engine = await engineFor(values);
    const hooks = await engine.installHooks();
    await engine.close();
    out(`installed ${hooks.join(', ')}: every certbot renewal (certbot.timer, autossl renew, certbot by hand) now runs autossl's hooks`);
    return 0;
  },
  vhost: cmdVhostShow,
  jobs: cmdJobs,
  recover: (_, values) => cmdRecover(values),
  init: cmdInit,
  setup: async (_, values) => {
    const { runSetup } = await import('./setup/setup.js');
    const engine = await engineFor(values);
    const result = await runSetup(engine, {
      agent: values.agent === true,
      dryRun: values['dry-run'] === true,
      systemdDir: values['systemd-dir'] as string | undefined,
    }).finally(() => engine.close());
    if (values.json === true) out(JSON.stringify(result, null, 2));
    else {
      for (const d of result.done) out(`${values['dry-run'] === true ? 'plan' : 'done'}  ${d}`);
      for (const t of result.todo) out(`todo  ${t}`);
    }
    return 0;
  },
  uninstall: cmdUninstall,
  upload: cmdUpload,
  agent: (rest, values) => (rest[0] === 'call' ? cmdAgentCall(rest.slice(1), values) : cmdAgent(rest, values)),
  demo: (_, values) => runDemoFromCheckout(values.keep === true),
};

async function main(argv: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        config: { type: 'string' },
        json: { type: 'boolean' },
        'dry-run': { type: 'boolean' },
        force: { type: 'boolean' },
        all: { type: 'boolean' },
        diff: { type: 'boolean' },
        keep: { type: 'boolean' },
        discard: { type: 'string' },
        'skip-check': { type: 'string', multiple: true },
        'cert-name': { type: 'string' },
        'pass-only': { type: 'boolean' },
        probe: { type: 'boolean' },
        verbose: { type: 'boolean', short: 'v' },
        limit: { type: 'string' },
        cert: { type: 'string' },
        key: { type: 'string' },
        url: { type: 'string' },
        'token-file': { type: 'string' },
        insecure: { type: 'boolean' },
        out: { type: 'string' },
        'no-check': { type: 'boolean' },
        resolver: { type: 'string', multiple: true },
        address: { type: 'string', multiple: true },
        agent: { type: 'boolean' },
        'systemd-dir': { type: 'string' },
        help: { type: 'boolean', short: 'h' },
        version: { type: 'boolean' },
      },
    });
  } catch (error) {
    // Node's parser words it for programmers (and leaves a quote open): say it for the user, one line, then where help is
    const message = (error as Error).message;
    const unknown = /^Unknown option '([^']*)'/.exec(message);
    err(
      unknown
        ? `error: unknown option ${JSON.stringify(unknown[1]).slice(0, 60)}${unknown[1]!.startsWith('--') ? '' : ' (a domain that starts with "-" goes after "--": autossl issue -- -x.example.com)'}`
        : `error: ${message.split('\n')[0]!.slice(0, 200)}`,
    );
    err('run "autossl --help" for the commands and their options');
    return 2;
  }
  const { positionals, values } = parsed;
  const [first, ...rest] = positionals;
  const command = first ?? '';
  setCommand(command);
  if (values.version) {
    const pkg = JSON.parse(fs.readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
    out(pkg.version);
    return 0;
  }
  if (values.help || !command) {
    (command || values.help ? out : err)(USAGE);
    return command || values.help ? 0 : 2;
  }
  try {
    const run = Object.hasOwn(COMMANDS, command) ? COMMANDS[command] : undefined;
    if (!run) {
      const near = closestCommand(command);
      err(`error: unknown command ${JSON.stringify(command.slice(0, 40))}${near ? `; did you mean "${near}"?` : ''}`);
      err('run "autossl --help" for the commands and their options');
      return 2;
    }
    return await run(rest, values);
  } catch (error) {
    const e = toAutoSslError(error);
    printError(e, values.json === true);
    if (e.code === 'INTERNAL' && process.env.AUTOSSL_DEBUG) err(String((error as Error).stack));
    return errorKind(e.code) === 'input' ? 2 : 1;
  }
}

/** The command a typo was probably meant to be (edit distance 2 at most), from the usage text's command list. */
function closestCommand(typed: string): string | undefined {
  const commands = [...new Set([...USAGE.matchAll(/^ {2}autossl ([a-z-]+)/gm)].map((m) => m[1]!))];
  const distance = (a: string, b: string): number => {
    const row = Array.from({ length: b.length + 1 }, (_, i) => i);
    for (let i = 1; i <= a.length; i++) {
      let prev = row[0]!;
      row[0] = i;
      for (let j = 1; j <= b.length; j++) {
        const here = row[j]!;
        row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1));
        prev = here;
      }
    }
    return row[b.length]!;
  };
  const best = commands.map((c) => [c, distance(typed.slice(0, 40), c)] as const).sort((x, y) => x[1] - y[1])[0];
  return best && best[1] <= 2 ? best[0] : undefined;
}

let answered = false;
// the event loop ran dry with the command unfinished (something awaited forever): never exit 0 with no answer
process.on('beforeExit', () => {
  if (answered) return;
  answered = true;
  err('error INTERNAL: the command stopped without finishing (something it waited for can never complete); nothing more was done.');
  process.exitCode = 1;
});

main(process.argv.slice(2)).then(
  (code) => {
    answered = true;
    process.exitCode = code;
    // a plugin that never settles (past its deadline) must not keep the process alive after the answer
    setTimeout(() => process.exit(code), 1000).unref();
  },
  (error) => {
    answered = true;
    err(`error INTERNAL: ${(error as Error).message}`);
    process.exitCode = 1;
    setTimeout(() => process.exit(1), 1000).unref();
  },
);

/**
 * The demo's ACME rig (pebble, challtestsrv, a private nginx; it can stop services) is a dev tool kept in
 * scripts/sandbox, outside the published package: it runs from a checkout (dist/scripts beside dist/src), and an
 * installed package says so instead of carrying the rig.
 */
async function runDemoFromCheckout(keep: boolean): Promise<number> {
  const rig = new URL('../scripts/sandbox/demo.js', import.meta.url);
  if (!fs.existsSync(rig)) {
    err('error: the demo runs from a checkout of autossl, not from the installed package:');
    err('  git clone <the autossl repository> && cd autossl && npm ci && sudo npm run demo');
    return 2;
  }
  const demo = (await import(rig.href)) as { runDemo(options: { keep: boolean; log: (line: string) => void }): Promise<number> };
  return await demo.runDemo({ keep, log: out });
}
