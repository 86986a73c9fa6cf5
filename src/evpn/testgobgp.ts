// A gobgpd stand-in for tests and the scale benchmark (not packaged): the same gRPC service, from
// GoBGP's own .proto files, on loopback, answering the calls vtep makes and streaming what the
// caller pushes as WatchEvent.
import * as grpc from '@grpc/grpc-js';
import { loadApi, type ApiPath } from './gobgp.js';

export class FakeGobgp {
  readonly added = new Map<string, ApiPath>();
  readonly deleted: string[] = [];
  private readonly watchers = new Set<grpc.ServerWritableStream<unknown, unknown>>();
  private server!: grpc.Server;
  port = 0;
  asn = 65000;
  routerId = '192.0.2.2';
  private n = 0;

  static async start(port = 0): Promise<FakeGobgp> {
    const f = new FakeGobgp();
    await f.listen(port);
    return f;
  }

  private async listen(port: number): Promise<void> {
    this.server = new grpc.Server();
    this.server.addService(loadApi().service, {
      GetBgp: (_c: unknown, cb: grpc.sendUnaryData<unknown>) =>
        cb(null, { global: { asn: this.asn, router_id: this.routerId } }),
      AddPath: (
        c: grpc.ServerUnaryCall<{ path: ApiPath }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const uuid = Buffer.from(`u${this.n++}`);
        this.added.set(uuid.toString(), c.request.path);
        cb(null, { uuid });
      },
      DeletePath: (
        c: grpc.ServerUnaryCall<{ uuid: Buffer }, unknown>,
        cb: grpc.sendUnaryData<unknown>,
      ) => {
        const k = Buffer.from(c.request.uuid).toString();
        this.deleted.push(k);
        this.added.delete(k);
        cb(null, {});
      },
      ListPeer: (c: grpc.ServerWritableStream<unknown, unknown>) => c.end(),
      WatchEvent: (c: grpc.ServerWritableStream<unknown, unknown>) => {
        this.watchers.add(c);
        c.on('cancelled', () => this.watchers.delete(c));
      },
    });
    this.port = await new Promise<number>((resolve, reject) =>
      this.server.bindAsync(
        `127.0.0.1:${port}`,
        grpc.ServerCredentials.createInsecure(),
        (err, p) => (err ? reject(err) : resolve(p)),
      ),
    );
  }

  get target(): string {
    return `127.0.0.1:${this.port}`;
  }

  get watching(): number {
    return this.watchers.size;
  }

  /** Paths to every watcher (as gobgpd streams its table and changes). */
  push(paths: ApiPath[]): void {
    for (const w of this.watchers) w.write({ table: { paths } });
  }

  peer(address: string, state: string): void {
    for (const w of this.watchers)
      w.write({
        peer: {
          type: 'STATE',
          peer: { state: { neighbor_address: address, peer_asn: 65000, session_state: state } },
        },
      });
  }

  /** The paths added and not deleted, by NLRI type and content. */
  live(): ApiPath[] {
    return [...this.added.values()];
  }

  async stop(): Promise<void> {
    for (const w of this.watchers) w.destroy();
    this.watchers.clear();
    this.server.forceShutdown();
  }
}
