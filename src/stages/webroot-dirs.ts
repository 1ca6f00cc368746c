/**
 * The challenge directory and the files in it must be readable by nginx's workers (www-data), whatever umask
 * autossl runs with (systemd units often set 077): modes are set explicitly, not left to the umask.
 */
import fs from 'node:fs/promises';
import path from 'node:path';

/** `<webroot>/.well-known/acme-challenge`, created as needed; the directories autossl creates are 0755. */
export async function challengeDir(webroot: string): Promise<string> {
  const dir = path.join(webroot, '.well-known', 'acme-challenge');
  const created = await fs.mkdir(dir, { recursive: true, mode: 0o755 });
  // mkdir's mode is masked by the umask: the ones just made get theirs explicitly (existing ones are the admin's)
  if (created) {
    for (let d = dir; d.length >= created.length; d = path.dirname(d)) {
      await fs.chmod(d, 0o755);
      if (d === created) break;
    }
  }
  return dir;
}

/** A file nginx serves: 0644 whatever the umask. */
export async function writeServed(file: string, data: string): Promise<void> {
  await fs.writeFile(file, data, { mode: 0o644 });
  await fs.chmod(file, 0o644);
}
