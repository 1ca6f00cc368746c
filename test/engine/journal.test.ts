/**
 * The journal of a run that was killed: recovered only where the file still holds exactly what autossl wrote; a
 * later hand edit is never overwritten (conflict, both paths named, journal kept); commands that only read report
 * it and write nothing; a damaged journal is a coded error naming it and keeps its backups; a damaged backup
 * blocks only its own file.
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execa } from 'execa';
import { describe, expect, it } from 'vitest';
import { BINARIES } from '../../scripts/sandbox/rig.js';
import { sha256 } from '../../src/nginx/transaction.js';
import { makeTree, type NginxSandboxTree } from '../helpers/nginx-fixture.js';
import { parseJson } from '../helpers/json.js';

const CLI = path.resolve(import.meta.dirname, '../../dist/src/cli.js');
const TRANSACTION = path.resolve(import.meta.dirname, '../../dist/src/nginx/transaction.js');

const cli = (args: string[], config: string) => execa('node', [CLI, ...args, '--config', config], { reject: false });

/** A process that writes `after` to `file` through a transaction, then is SIGKILLed before it commits. */
async function killedWriter(journalDir: string, file: string, after: string): Promise<void> {
  const script = `import fs from 'node:fs';
import { EditTransaction } from ${JSON.stringify(TRANSACTION)};
const tx = new EditTransaction({ journalDir: ${JSON.stringify(journalDir)}, label: 'killed' });
await tx.write(${JSON.stringify(file)}, fs.readFileSync(${JSON.stringify(file)}, 'latin1'), ${JSON.stringify(after)});
process.kill(process.pid, 'SIGKILL');`;
  const run = await execa('node', ['--input-type=module', '-e', script], { reject: false });
  expect(run.signal, run.stderr).toBe('SIGKILL');
}

async function setup(): Promise<{ t: NginxSandboxTree; config: string; journalDir: string }> {
  const t = await makeTree('server {\n    listen 80;\n    server_name journal.example.test;\n    root /var/www/j;\n}\n');
  const config = path.join(t.dir, 'autossl.config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      nginx: { binary: BINARIES.nginx, config: t.main, extraArgs: ['-p', t.dir, '-e', path.join(t.dir, 'error.log')], reloadCommand: ['/bin/true'] },
      certbot: { configDir: path.join(t.dir, 'le') },
      stateDir: path.join(t.dir, 'state'),
      sites: [{ domain: 'journal.example.test' }],
    }),
  );
  return { t, config, journalDir: path.join(t.dir, 'state', 'journal') };
}

const journals = (dir: string) => (fs.existsSync(dir) ? fs.readdirSync(dir).filter((n) => n !== 'locks') : []);

describe('the journal of a killed run', () => {
  it('a hand edit made after the crash is never overwritten: read-only commands report it, recover names both paths and keeps the journal', async () => {
    const { t, config, journalDir } = await setup();
    const original = fs.readFileSync(t.site, 'latin1');
    await killedWriter(journalDir, t.site, original.replace('root /var/www/j;', 'root /var/www/j;\n    # autossl was here'));
    // the admin edits the file by hand afterwards
    const handEdited = fs.readFileSync(t.site, 'latin1').replace('# autossl was here', '# autossl was here\n    add_header X-Admin "edit";');
    fs.writeFileSync(t.site, handEdited, 'latin1');
    const [journal] = journals(journalDir);
    expect(journal).toBeDefined();
    for (const args of [
      ['issue', 'journal.example.test', '--dry-run', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'],
      ['vhost', 'show', 'journal.example.test', '--diff'],
      ['status'],
      ['check', 'journal.example.test', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'],
    ]) {
      const run = await cli(args, config);
      expect(fs.readFileSync(t.site, 'latin1'), args.join(' ')).toBe(handEdited);
      expect(journals(journalDir), args.join(' ')).toEqual([journal]);
      if (args[0] === 'issue') expect(run.stdout).toContain(`${t.site} was changed after an interrupted run edited it`);
      if (args[0] === 'status') expect(run.stdout).toContain('a killed run left work behind: run autossl recover');
    }
    const recover = await cli(['recover', '--json'], config);
    expect(recover.exitCode).toBe(1);
    const report = parseJson(recover.stdout) as { restored: string[]; conflicts: Array<{ file: string; backup: string; journal: string }> };
    expect(report.restored).toEqual([]);
    expect(report.conflicts).toEqual([expect.objectContaining({ code: 'JOURNAL_CONFLICT', file: t.site, journal: path.join(journalDir, journal!) })]);
    expect(fs.readFileSync(report.conflicts[0]!.backup, 'latin1')).toBe(original); // the bytes before autossl's edit
    expect(fs.readFileSync(t.site, 'latin1')).toBe(handEdited);
    // a real issue does not touch it either, and says so
    const issue = await cli(['issue', 'journal.example.test', '--skip-check', 'dns', '--skip-check', 'caa', '--skip-check', 'port80'], config);
    expect(issue.stdout).toContain('was changed after an interrupted run edited it');
    expect(journals(journalDir)).toContain(journal);
    // resolved by hand: discard it
    const discard = await cli(['recover', '--discard', path.join(journalDir, journal!)], config);
    expect(discard.exitCode, discard.stdout + discard.stderr).toBe(0);
    expect(journals(journalDir)).not.toContain(journal);
  });

  it('when the file still holds what autossl wrote, the next run restores it byte for byte', async () => {
    const { t, config, journalDir } = await setup();
    const before = sha256(fs.readFileSync(t.site));
    await killedWriter(journalDir, t.site, fs.readFileSync(t.site, 'latin1') + '# half-done\n');
    const recover = await cli(['recover', '--json'], config);
    expect(recover.exitCode, recover.stdout).toBe(0);
    expect(parseJson(recover.stdout).restored).toEqual([t.site]);
    expect(sha256(fs.readFileSync(t.site))).toBe(before);
    expect(journals(journalDir)).toEqual([]);
  });

  it('a garbage manifest is a coded report naming it, its backups kept; a damaged backup blocks only its own file', async () => {
    const { t, config, journalDir } = await setup();
    const other = path.join(t.dir, 'sites', 'other.conf');
    fs.writeFileSync(other, 'server {\n    listen 80;\n    server_name other.example.test;\n    root /var/www/o;\n}\n');
    const otherBefore = fs.readFileSync(other, 'latin1');
    await killedWriter(journalDir, t.site, fs.readFileSync(t.site, 'latin1') + '# one\n');
    await killedWriter(journalDir, other, otherBefore + '# two\n');
    const [first, second] = journals(journalDir).sort();
    // the journal of the first write: its backup is damaged
    const firstDir = path.join(journalDir, first!);
    const pre = fs.readdirSync(firstDir).find((f) => f.endsWith('.pre'))!;
    fs.writeFileSync(path.join(firstDir, pre), 'garbage');
    // a third journal whose manifest is not JSON at all, older than a minute
    const garbage = path.join(journalDir, '0-garbage');
    fs.mkdirSync(garbage);
    fs.writeFileSync(path.join(garbage, 'manifest.json'), '{ not json');
    fs.writeFileSync(path.join(garbage, '1.pre'), 'kept');
    const old = new Date(Date.now() - 3_600_000);
    fs.utimesSync(garbage, old, old);
    const recover = await cli(['recover', '--json'], config);
    expect(recover.exitCode).toBe(1);
    const report = parseJson(recover.stdout) as { restored: string[]; damaged: Array<{ code: string; journal: string; reason: string }> };
    expect(report.damaged.every((d) => d.code === 'JOURNAL_DAMAGED')).toBe(true);
    expect(report.restored).toEqual([other]); // the other file is not blocked by the damaged backup
    expect(fs.readFileSync(other, 'latin1')).toBe(otherBefore);
    expect(report.damaged.map((d) => d.journal).sort()).toEqual([firstDir, path.join(garbage, 'manifest.json')].sort());
    expect(fs.readFileSync(t.site, 'latin1')).toContain('# one'); // left as it is: its backup cannot be trusted
    expect(fs.readFileSync(path.join(garbage, '1.pre'), 'utf8')).toBe('kept');
    expect(journals(journalDir).sort()).toEqual(['0-garbage', first!].sort());
    void second;
  });
});

describe('a vhost reached through a symlink (Debian: sites-enabled/x -> ../sites-available/x)', () => {
  it('write, revert and recovery go through the link to its file; the link stays a link', async () => {
    const { EditTransaction } = await import('../../src/nginx/transaction.js');
    const { recoverJournals } = await import('../../src/nginx/journal-recovery.js');
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'autossl-link-'));
    for (const d of ['sites-available', 'sites-enabled', 'journal']) fs.mkdirSync(path.join(dir, d));
    const target = path.join(dir, 'sites-available', 'x');
    const link = path.join(dir, 'sites-enabled', 'x');
    const before = 'server {\n    listen 80;\n    server_name x.test;\n}\n';
    const after = before.replace('listen 80;', 'listen 80;\n    listen 443 ssl;');
    fs.writeFileSync(target, before);
    fs.symlinkSync('../sites-available/x', link);
    const tx = new EditTransaction({ journalDir: path.join(dir, 'journal'), label: 'link' });
    await tx.write(link, before, after);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe(after);
    await tx.revert();
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe(before);
    await tx.commit();
    // killed after the write: recovery restores the file behind the link, and keeps the link
    await killedWriter(path.join(dir, 'journal'), link, after);
    expect(fs.readFileSync(target, 'utf8')).toBe(after);
    const report = await recoverJournals(path.join(dir, 'journal'));
    expect(report.restored).toEqual([link]);
    expect(fs.lstatSync(link).isSymbolicLink()).toBe(true);
    expect(fs.readFileSync(target, 'utf8')).toBe(before);
    expect(fs.readdirSync(path.join(dir, 'sites-enabled'))).toEqual(['x']); // no temp file left beside the link
  });
});
