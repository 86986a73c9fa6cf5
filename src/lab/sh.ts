import { spawn, spawnSync, type ChildProcess } from 'node:child_process';

/** Run a command line synchronously; throw with its stderr when it fails. */
export function sh(
  cmd: string,
  opts: { allowFail?: boolean; input?: string; env?: Record<string, string> } = {},
): string {
  const r = spawnSync('sh', ['-c', cmd], {
    encoding: 'utf8',
    input: opts.input,
    timeout: 60_000,
    env: opts.env ? { ...process.env, ...opts.env } : process.env,
  });
  if (r.status !== 0 && !opts.allowFail) {
    throw Object.assign(
      new Error(`command failed (${r.status ?? r.signal}): ${cmd}\n${r.stderr}${r.stdout}`),
      {
        code: 'ERR_COMMAND',
        status: r.status,
        stderr: r.stderr,
      },
    );
  }
  return r.stdout;
}

/** Start a background command; the caller kills it. */
export function bg(cmd: string, env?: Record<string, string>): ChildProcess {
  return spawn('sh', ['-c', `exec ${cmd}`], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: env ? { ...process.env, ...env } : process.env,
  });
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Poll `check` (awaited when it is async) until it gives a truthy value or `ms` pass. */
export async function until<T>(
  check: () => T | undefined | false | Promise<T | undefined | false>,
  ms = 5000,
  step = 50,
): Promise<T | undefined> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await check();
    if (v) return v;
    if (Date.now() > end) return undefined;
    await sleep(step);
  }
}
