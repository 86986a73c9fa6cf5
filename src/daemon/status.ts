import type { Status } from '../control/api.js';
import type { GatewayStatus } from '../ovsdb/gateway.js';
import type { TapPort } from './tapport.js';

/**
 * `vtep status`: healthy, or degraded with one line per problem (exit 1 from the CLI). What it
 * weighs: every TAP (static VNIs, OVSDB ports bound or not), the OVSDB session, and what the
 * daemon found (the underlay address and link, sends that all fail, a stuck thread).
 */
export function statusOf(
  now: number,
  started: number,
  ports: readonly TapPort[],
  ovsdb: GatewayStatus | undefined,
  /** Problems found elsewhere (the underlay, sends, stuck threads). */
  others: readonly string[] = [],
): Status {
  const taps = ports.map((p) => p.status(now));
  const problems = taps
    .filter((t) => t.state !== 'up')
    .map(
      (t) =>
        `tap ${t.name} (vni ${t.vni ?? 'unbound'}) is down for ${(t.downForMs / 1000).toFixed(1)} s${t.lastError ? `: ${t.lastError}` : ''}`,
    );
  for (const t of taps)
    if (t.bridgeProblem)
      problems.push(`tap ${t.name} (vni ${t.vni ?? 'unbound'}) is ${t.bridgeProblem}`);
  if (ovsdb && ovsdb.state !== 'connected')
    problems.push(
      `ovsdb ${ovsdb.target} is not connected (${ovsdb.state} for ${ovsdb.forSeconds} s${ovsdb.lastError ? `: ${ovsdb.lastError}` : ''}); forwarding goes on with what it last knew`,
    );
  problems.push(...others);
  return {
    healthy: problems.length === 0,
    problems,
    uptimeSeconds: Math.floor((now - started) / 1000),
    taps,
  };
}
