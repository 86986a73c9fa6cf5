/** Where an OVSDB server is: what ovsdb-server's --remote and ovs-vsctl's --db take. */

export type Target = { path: string } | { host: string; port: number; ssl: boolean };

/**
 * `unix:PATH`, `tcp:HOST:PORT` or `ssl:HOST:PORT` (HOST an address or a name; an IPv6 address
 * in brackets); undefined for anything else, with the reason in `why`.
 */
export function targetOf(target: string, why: { reason?: string } = {}): Target | undefined {
  const unix = /^unix:(.+)$/.exec(target);
  if (unix) return { path: unix[1] };
  const tcp = /^(tcp|ssl):(\[[0-9a-fA-F:.]+\]|[^:[\]]+):([0-9]{1,5})$/.exec(target);
  if (!tcp) {
    why.reason = 'must be unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT';
    return undefined;
  }
  const port = Number(tcp[3]);
  if (port < 1 || port > 65535) {
    why.reason = 'has a port outside 1..65535';
    return undefined;
  }
  return { host: tcp[2].replace(/^\[|\]$/g, ''), port, ssl: tcp[1] === 'ssl' };
}

/** `targetOf`, or a thrown error (code ERR_OVSDB_TARGET) that names the target. */
export function parseTarget(target: string): Target {
  const why: { reason?: string } = {};
  const t = targetOf(target, why);
  if (t) return t;
  throw Object.assign(new Error(`ovsdb target ${JSON.stringify(target)} ${why.reason}`), {
    name: 'OvsdbError',
    code: 'ERR_OVSDB_TARGET',
  });
}
