import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';

/** Minimal view of a tap test object, so helpers do not depend on tap's types. */
interface TestLike {
  fail(message: string): unknown;
  plan(n: number, comment?: string): unknown;
}

export const inCI = process.env.CI === 'true' || process.env.CI === '1';

function haveCommand(cmd: string): boolean {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/**
 * Check the prerequisites of a test that drives real components. Returns true when they are all
 * there. When one is missing: with CI=true the test FAILS (CI must have installed it), and
 * elsewhere the test ends as skipped (`plan(0, reason)`), so a developer without root or without
 * the Debian packages still gets a useful run.
 */
export function needs(
  t: TestLike,
  what: { commands?: string[]; root?: boolean; files?: string[] },
): boolean {
  const missing: string[] = [];
  for (const cmd of what.commands ?? []) if (!haveCommand(cmd)) missing.push(`command ${cmd}`);
  for (const f of what.files ?? []) if (!existsSync(f)) missing.push(`file ${f}`);
  if (what.root && process.getuid?.() !== 0) missing.push('root (CAP_NET_ADMIN)');
  if (missing.length === 0) return true;
  const message = `missing prerequisite: ${missing.join(', ')} (see .ci/run for the install)`;
  if (inCI) t.fail(message);
  else t.plan(0, message);
  return false;
}
