import { readFileSync } from 'node:fs';

/** The events of a vtep log file (one JSON object per line; other lines are skipped). */
export function logEvents(file: string): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const line of readFileSync(file, 'utf8').split('\n')) {
    if (!line.startsWith('{')) continue;
    try {
      out.push(JSON.parse(line) as Record<string, unknown>);
    } catch {
      /* a line cut by a kill */
    }
  }
  return out;
}

/** The log's messages, one per line: what a person reads. */
export function logMessages(file: string): string {
  return logEvents(file)
    .map((e) => String(e.msg))
    .join('\n');
}
