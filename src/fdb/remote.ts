import { isIPv4, isIPv6 } from 'node:net';
import { VXLAN_PORT } from '../wire/udp.js';

/**
 * A remote VTEP: underlay address and UDP port. Configured remotes are interned (one object
 * per address:port) so that the data path mostly compares them by identity; two objects with
 * the same `key` are the same remote.
 */
export interface Remote {
  /** `192.0.2.1:4789` or `[2001:db8::1]:4789`; unique per remote. */
  readonly key: string;
  readonly address: string;
  readonly port: number;
  readonly family: 4 | 6;
}

export function remoteKey(address: string, port: number): string {
  return isIPv6(address) ? `[${address}]:${port}` : `${address}:${port}`;
}

/** Thrown for an address that is neither IPv4 nor IPv6 (configuration, not packet, input). */
export class RemoteError extends Error {
  override readonly name = 'RemoteError';
  readonly code = 'ERR_REMOTE_ADDRESS';
}

/** A validated remote, not interned (see `Remotes` for that). */
export function makeRemote(address: string, port = VXLAN_PORT): Remote {
  const family = isIPv4(address) ? 4 : isIPv6(address) ? 6 : 0;
  if (family === 0)
    throw new RemoteError(`remote address ${JSON.stringify(address)} is not IPv4 or IPv6`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new RemoteError(`remote port ${port} is not in 1..65535`);
  }
  return Object.freeze({ key: remoteKey(address, port), address, port, family });
}

/** Interns remotes so that equal address:port pairs are the same object. */
export class Remotes {
  private readonly byKey = new Map<string, Remote>();

  get(address: string, port = VXLAN_PORT): Remote {
    const key = remoteKey(address, port);
    let r = this.byKey.get(key);
    if (r === undefined) {
      r = makeRemote(address, port);
      this.byKey.set(key, r);
    }
    return r;
  }

  /** Look up without creating (data path: an unknown sender is not interned). */
  find(key: string): Remote | undefined {
    return this.byKey.get(key);
  }

  get size(): number {
    return this.byKey.size;
  }
}
