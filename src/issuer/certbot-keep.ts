/**
 * The certbot issuer's `keep`: a lineage obtained elsewhere (another node of a fleet published it) written as the
 * next version of lineage `id` here, in certbot's layout (archive/<id>/certN.pem..., live/<id>/ relative links, a
 * renewal config) so everything that reads lineages sees an ordinary one. Archive files first (key 0600), then each
 * live link replaced by rename, so nginx never reads half a lineage. A lineage written here gets `autorenew = False`
 * in a renewal config of its own: the node that ordered it renews it (and publishes the renewal).
 */
import fs from 'node:fs';
import fsp from 'node:fs/promises';
import path from 'node:path';
import { readLineage } from '../certbot/lineage.js';
import { AutoSslError } from '../errors.js';
import type { KeptPems } from './issuer.js';
import type { Lineage as LineageFiles } from '../certbot/lineage.js';

export async function keepCertbotLineage(configDir: string, id: string, pems: KeptPems): Promise<LineageFiles> {
  if (!/^[A-Za-z0-9._-]+$/.test(id) || id.startsWith('.'))
    throw new AutoSslError('CONFIG_INVALID', `Invalid certificate name ${JSON.stringify(id).slice(0, 80)}.`);
  const base = path.resolve(configDir);
  const archive = path.join(base, 'archive', id);
  const live = path.join(base, 'live', id);
  await fsp.mkdir(archive, { recursive: true, mode: 0o700 });
  await fsp.mkdir(live, { recursive: true, mode: 0o755 });
  const versions = (await fsp.readdir(archive))
    .map((f) => /^cert(\d+)\.pem$/.exec(f)?.[1])
    .filter(Boolean)
    .map(Number);
  const n = Math.max(0, ...versions) + 1;
  const parts: Array<[string, string, number]> = [
    ['cert', pems.cert, 0o644],
    ['chain', pems.chain, 0o644],
    ['fullchain', pems.fullchain, 0o644],
    ['privkey', pems.key, 0o600],
  ];
  for (const [name, text, mode] of parts) {
    const file = path.join(archive, `${name}${n}.pem`);
    await fsp.writeFile(file, text, { mode, flag: 'wx' });
    await fsp.chmod(file, mode);
  }
  for (const [name] of parts) {
    const link = path.join(live, `${name}.pem`);
    const temp = `${link}.keep-${process.pid}`;
    await fsp.rm(temp, { force: true });
    await fsp.symlink(path.join('..', '..', 'archive', id, `${name}${n}.pem`), temp);
    await fsp.rename(temp, link);
  }
  const conf = path.join(base, 'renewal', `${id}.conf`);
  if (!fs.existsSync(conf)) {
    await fsp.mkdir(path.dirname(conf), { recursive: true, mode: 0o755 });
    await fsp.writeFile(
      conf,
      [
        `# Written by autossl: ${pems.note.replace(/[\r\n]/g, ' ')}`,
        `archive_dir = ${archive}`,
        `cert = ${live}/cert.pem`,
        `privkey = ${live}/privkey.pem`,
        `chain = ${live}/chain.pem`,
        `fullchain = ${live}/fullchain.pem`,
        '',
        '[renewalparams]',
        'autorenew = False',
        '',
      ].join('\n'),
      { mode: 0o644 },
    );
  }
  return readLineage(configDir, id)!;
}
