/**
 * The ACME test rig (scripts/sandbox: pebble, challtestsrv, a private nginx it starts and stops) is a dev tool:
 * `npm pack` ships none of it, nothing packed can stop a service, and the installed CLI's `demo` says to run it
 * from a checkout.
 */
import fs from 'node:fs';
import path from 'node:path';
import { execa } from 'execa';
import { beforeAll, describe, expect, it } from 'vitest';

const ROOT = path.resolve(import.meta.dirname, '../..');
let packed: string[];

beforeAll(async () => {
  // --ignore-scripts: the list of what would be packed, from the dist already built (npm test builds first)
  const pack = await execa('npm', ['pack', '--dry-run', '--json', '--ignore-scripts'], { cwd: ROOT });
  // npm <= 11 prints an array of packages, npm 12 (Debian sid) an object keyed by the package's name
  const printed = JSON.parse(pack.stdout) as Record<string, { files: Array<{ path: string }> }> | Array<{ files: Array<{ path: string }> }>;
  packed = (Array.isArray(printed) ? printed : Object.values(printed))[0]!.files.map((f) => f.path);
}, 120_000);

describe('the published package', () => {
  it('carries no sandbox code: no file of the rig, nor of bench/ or scripts/', () => {
    expect(packed.length).toBeGreaterThan(50);
    expect(packed.filter((p) => /sandbox|(^|\/)rig\b|^dist\/(bench|scripts|test)\//.test(p))).toEqual([]);
  });

  it('no packed code names the rig or can stop a service', () => {
    const code = packed.filter((p) => /\.(js|ts|cjs|mjs)$/.test(p) && !p.endsWith('.d.ts'));
    expect(code.length).toBeGreaterThan(20);
    const offenders = code.filter((p) => {
      const text = fs.readFileSync(path.join(ROOT, p), 'utf8');
      // the rig's own names, and any command that stops, kills or masks a service or stops nginx
      return /AcmeRig|pebble-challtestsrv|\bsystemctl\b[^\n]{0,60}\b(stop|kill|mask|disable)\b|['"]-s['"],\s*['"](stop|quit)['"]/.test(text);
    });
    expect(offenders).toEqual([]);
  });

  it("the CLI's demo, run without the rig beside it, says to run it from a checkout", async () => {
    // the installed layout: dist/src without dist/scripts
    const dir = fs.mkdtempSync(path.join(process.env.TMPDIR ?? '/tmp', 'autossl-norig-'));
    fs.cpSync(path.join(ROOT, 'dist', 'src'), path.join(dir, 'dist', 'src'), { recursive: true });
    fs.cpSync(path.join(ROOT, 'package.json'), path.join(dir, 'package.json'));
    fs.symlinkSync(path.join(ROOT, 'node_modules'), path.join(dir, 'node_modules'));
    const run = await execa('node', [path.join(dir, 'dist', 'src', 'cli.js'), 'demo'], { reject: false, cwd: dir });
    expect(run.exitCode).toBe(2);
    expect(run.stderr).toContain('the demo runs from a checkout');
    expect(run.stderr).toContain('npm run demo');
  });
});
