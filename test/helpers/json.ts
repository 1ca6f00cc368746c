/**
 * The JSON a command printed: a document, or (issue --json) one JSON event per line with the summary last.
 */
export function parseJson<T = any>(stdout: string): T {
  try {
    return JSON.parse(stdout) as T;
  } catch {
    const lines = stdout.trim().split('\n');
    return JSON.parse(lines[lines.length - 1]!) as T;
  }
}

/** The events an `issue --json` run streamed before its summary. */
export function jsonEvents(stdout: string): Array<Record<string, unknown>> {
  return stdout
    .trim()
    .split('\n')
    .slice(0, -1)
    .map((l) => JSON.parse(l) as Record<string, unknown>);
}
