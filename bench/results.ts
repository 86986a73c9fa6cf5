import { mkdirSync, writeFileSync } from 'node:fs';
import { hostname, cpus } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** bench/results/, whether we run from bench/ (tsx) or dist/bench/ (compiled). */
export const resultsDir = join(
  dirname(fileURLToPath(import.meta.url)),
  ...(import.meta.url.includes('/dist/bench/') ? ['..', '..', 'bench'] : []),
  'results',
);

/** Where and on what a benchmark ran: results are only comparable on the same machine. */
export function machine(): Record<string, unknown> {
  return {
    host: hostname(),
    cpu: cpus()[0]?.model,
    cores: cpus().length,
    node: process.version,
    date: new Date().toISOString(),
  };
}

export function writeResult(name: string, data: unknown): string {
  mkdirSync(resultsDir, { recursive: true });
  const file = join(resultsDir, `${name}.json`);
  writeFileSync(file, JSON.stringify({ machine: machine(), ...(data as object) }, null, 2) + '\n');
  return file;
}
