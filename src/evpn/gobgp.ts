import { existsSync } from 'node:fs';
import { isAbsolute, join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import * as loader from '@grpc/proto-loader';
import protobuf from 'protobufjs';

/**
 * GoBGP's gRPC API (the `gobgpd` of Debian's `gobgpd`), the calls vtep makes: GetBgp, AddPath,
 * DeletePath, WatchEvent (the table and the peers, as a stream) and ListPeer. The `.proto` files
 * are the ones Debian ships in `golang-github-osrg-gobgp-dev`. NLRI and path attributes travel as
 * `google.protobuf.Any`, which grpc-js leaves packed: `Any` here packs and unpacks them with
 * protobufjs types from the same files. Nothing here knows what EVPN means (routes.ts does).
 */

export const DEFAULT_PROTO_DIR = '/usr/share/gocode/src/github.com/osrg/gobgp/api';
const FILES = ['gobgp.proto', 'attribute.proto', 'capability.proto'];

/** A packed `google.protobuf.Any` as grpc-js hands it over (`keepCase`). */
export interface AnyMsg {
  type_url: string;
  value: Buffer | Uint8Array;
}

/** Packs and unpacks `Any` values by their short type name (`EVPNMACIPAdvertisementRoute`). */
export class AnyCodec {
  constructor(private readonly root: protobuf.Root) {}

  static load(dir = DEFAULT_PROTO_DIR): AnyCodec {
    const root = new protobuf.Root();
    // Imports are named relative to the directory (google/protobuf/* come bundled).
    root.resolvePath = (_origin, target) => (isAbsolute(target) ? target : join(dir, target));
    root.loadSync(
      FILES.map((f) => join(dir, f)),
      { keepCase: true },
    );
    return new AnyCodec(root);
  }

  pack(type: string, value: Record<string, unknown>): AnyMsg {
    const t = this.root.lookupType(`apipb.${type}`);
    const err = t.verify(value);
    if (err) throw new Error(`apipb.${type}: ${err}`);
    return {
      type_url: `type.googleapis.com/apipb.${type}`,
      value: Buffer.from(t.encode(t.fromObject(value)).finish()),
    };
  }

  /** The short type name and the decoded fields (undefined for a type these files lack). */
  unpack(any: AnyMsg): { type: string; value: Record<string, unknown> } | undefined {
    const type = any.type_url.slice(any.type_url.lastIndexOf('/') + 1).replace(/^apipb\./, '');
    const t = this.root.lookup(`apipb.${type}`);
    if (!(t instanceof protobuf.Type)) return undefined;
    const m = t.decode(any.value);
    return {
      type,
      value: t.toObject(m, { longs: Number, bytes: Buffer, defaults: true, arrays: true }),
    };
  }
}

export interface ApiPath {
  nlri: AnyMsg;
  pattrs: AnyMsg[];
  family?: { afi: number; safi: number };
  is_withdraw?: boolean;
  best?: boolean;
  neighbor_ip?: string;
  source_id?: string;
  is_from_external?: boolean;
  uuid?: Buffer;
  stale?: boolean;
}

export interface ApiPeer {
  conf?: { neighbor_address?: string; peer_asn?: number };
  state?: {
    neighbor_address?: string;
    peer_asn?: number;
    session_state?: string;
    router_id?: string;
  };
}

export type WatchEvent =
  { kind: 'paths'; paths: ApiPath[] } | { kind: 'peer'; type: string; peer: ApiPeer };

export const EVPN_FAMILY = { afi: 25, safi: 70 } as const;

type Unary = (
  req: unknown,
  md: grpc.Metadata,
  o: grpc.CallOptions,
  cb: grpc.requestCallback<unknown>,
) => void;
type Stream = (
  req: unknown,
  md: grpc.Metadata,
  o: grpc.CallOptions,
) => grpc.ClientReadableStream<unknown>;
interface ApiStub extends grpc.Client {
  [name: string]: unknown;
}

/**
 * The `GobgpApi` service from the `.proto` files in `dir` (throws, naming the file and its Debian
 * package, when one is missing): what the client calls, and what a stand-in server serves.
 */
export function loadApi(dir = DEFAULT_PROTO_DIR): grpc.ServiceClientConstructor {
  for (const f of FILES)
    if (!existsSync(join(dir, f)))
      throw new Error(
        `GoBGP API file ${join(dir, f)} is missing (Debian package golang-github-osrg-gobgp-dev)`,
      );
  const def = loader.loadSync(
    FILES.map((f) => join(dir, f)),
    { keepCase: true, longs: Number, enums: String, defaults: true, includeDirs: [dir] },
  );
  const pkg = grpc.loadPackageDefinition(def) as unknown as {
    apipb: { GobgpApi: grpc.ServiceClientConstructor };
  };
  return pkg.apipb.GobgpApi;
}

/** One channel to a gobgpd. Calls reject with the gRPC status text (`14 UNAVAILABLE: …`). */
export class GobgpClient {
  private constructor(
    private readonly stub: ApiStub,
    readonly target: string,
    private readonly timeoutMs: number,
  ) {}

  /** Throws (naming the directory) when the `.proto` files are not there. */
  static open(target: string, o: { protoDir?: string; timeoutMs?: number } = {}): GobgpClient {
    const Api = loadApi(o.protoDir);
    const stub = new Api(target, grpc.credentials.createInsecure(), {
      'grpc.initial_reconnect_backoff_ms': 100,
      'grpc.max_reconnect_backoff_ms': 2000,
    }) as unknown as ApiStub;
    return new GobgpClient(stub, target, o.timeoutMs ?? 5000);
  }

  private unary<T>(name: string, req: unknown): Promise<T> {
    const fn = this.stub[name] as Unary;
    return new Promise((resolve, reject) =>
      fn.call(
        this.stub,
        req,
        new grpc.Metadata(),
        { deadline: Date.now() + this.timeoutMs },
        (err, res) => (err ? reject(new Error(`${name}: ${err.message}`)) : resolve(res as T)),
      ),
    );
  }

  private collect<T>(name: string, req: unknown): Promise<T[]> {
    const call = (this.stub[name] as Stream).call(this.stub, req, new grpc.Metadata(), {
      deadline: Date.now() + this.timeoutMs,
    });
    const out: T[] = [];
    return new Promise((resolve, reject) => {
      call.on('data', (d) => out.push(d as T));
      call.on('error', (err) => reject(new Error(`${name}: ${err.message}`)));
      call.on('end', () => resolve(out));
    });
  }

  async getBgp(): Promise<{ asn: number; routerId: string }> {
    const r = await this.unary<{ global?: { asn: number; router_id: string } }>('GetBgp', {});
    return { asn: r.global?.asn ?? 0, routerId: r.global?.router_id ?? '' };
  }

  /** Returns the path's uuid (what `deletePath` takes). */
  async addPath(path: ApiPath): Promise<Buffer> {
    const r = await this.unary<{ uuid: Buffer }>('AddPath', { table_type: 'GLOBAL', path });
    return r.uuid;
  }

  /**
   * Many paths in one client stream (`AddPathStream`), `batch` per message: what a route injector
   * needs (one AddPath per route costs a round trip each). Paths with `is_withdraw` withdraw.
   */
  addPathStream(paths: ApiPath[], batch = 1000): Promise<void> {
    return new Promise((resolve, reject) => {
      const fn = this.stub.AddPathStream as (
        md: grpc.Metadata,
        o: grpc.CallOptions,
        cb: grpc.requestCallback<unknown>,
      ) => grpc.ClientWritableStream<unknown>;
      const call = fn.call(this.stub, new grpc.Metadata(), {}, (err) =>
        err ? reject(new Error(`AddPathStream: ${err.message}`)) : resolve(),
      );
      for (let i = 0; i < paths.length; i += batch)
        call.write({ table_type: 'GLOBAL', paths: paths.slice(i, i + batch) });
      call.end();
    });
  }

  async deletePath(uuid: Buffer): Promise<void> {
    await this.unary('DeletePath', { table_type: 'GLOBAL', family: EVPN_FAMILY, uuid });
  }

  async listPeers(): Promise<ApiPeer[]> {
    const r = await this.collect<{ peer: ApiPeer }>('ListPeer', {});
    return r.map((x) => x.peer);
  }

  /**
   * The best paths (first the whole table, then changes) and the peers' state changes, until
   * the returned function is called or the stream ends (`end` with the reason).
   */
  watch(onEvent: (e: WatchEvent) => void, end: (why: string) => void): () => void {
    const call = (this.stub.WatchEvent as Stream).call(
      this.stub,
      { peer: {}, table: { filters: [{ type: 'BEST', init: true }] } },
      new grpc.Metadata(),
      {},
    );
    let over = false;
    const finish = (why: string): void => {
      if (over) return;
      over = true;
      end(why);
    };
    call.on(
      'data',
      (d: { table?: { paths: ApiPath[] }; peer?: { type: string; peer: ApiPeer } }) => {
        if (d.table) onEvent({ kind: 'paths', paths: d.table.paths });
        else if (d.peer) onEvent({ kind: 'peer', type: d.peer.type, peer: d.peer.peer });
      },
    );
    call.on('error', (err) => finish(err.message));
    call.on('end', () => finish('stream ended'));
    return () => {
      over = true;
      call.cancel();
    };
  }

  close(): void {
    this.stub.close();
  }
}
