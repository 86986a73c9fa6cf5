/** What `vtep stats` says of EVPN (the session is src/daemon/evpn.ts). */

export type EvpnState = 'connecting' | 'connected' | 'backoff' | 'stopped';

export interface EvpnVniStatus {
  vni: number;
  rd: string;
  rt: string[];
  routesIn: { mac: number; multicast: number };
  routesOut: { mac: number; multicast: number };
  flood: string[];
}

export interface EvpnStatus {
  gobgp: string;
  state: EvpnState;
  forSeconds: number;
  connects: number;
  lastError?: string;
  routerId: string;
  asn: number;
  peers: { address: string; asn: number; state: string }[];
  vnis: EvpnVniStatus[];
  /** Routes not taken, by reason (`no_import`, `label`, malformed ones). */
  skipped: Record<string, number>;
  /** Failed AddPath/DeletePath calls. */
  writeErrors: number;
}
