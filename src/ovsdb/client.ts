import { EventEmitter } from 'node:events';
import { readFileSync } from 'node:fs';
import { createConnection, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { JsonSplitter } from './jsonstream.js';
import { parseTarget } from './target.js';

export { parseTarget, type Target } from './target.js';

/**
 * An OVSDB client (RFC 7047): JSON-RPC 1.0 over `unix:PATH` or `tcp:HOST:PORT`, what
 * `ovn-controller-vtep` and `ovs-vtep` speak to the hardware_vtep database. Requests get
 * promises; `update`/`update2` notifications of monitors become events; the server's `echo`
 * (its liveness probe) is answered. Malformed or unexpected messages never throw out of the
 * client: they are reported (`protocolError`) and, where the stream cannot be trusted any more,
 * end the connection (`close`), from which a caller reconnects. Nothing a server sends can take
 * more than the session down: texts are bounded in size and nesting before they are parsed (see
 * `JsonSplitter`), whatever handling a message throws ends this session only, and a server that
 * stops answering while a request waits is given up after `answerMs` without a byte from it.
 *
 * Events: `update` (monitorId, tableUpdates), `update2` (monitorId, tableUpdates2),
 * `protocolError` (Error: a message ignored), `close` (Error | undefined; code
 * `ERR_OVSDB_PROTOCOL` when what the server sent ended the session).
 */

/** A JSON-RPC error answer, or an operation of a transaction that failed. */
export class OvsdbError extends Error {
  override readonly name = 'OvsdbError';
  constructor(
    readonly code: string,
    message: string,
    readonly details?: unknown,
  ) {
    super(message);
  }
}

export interface OvsdbSchema {
  name: string;
  version: string;
  tables: Record<string, { columns: Record<string, unknown> }>;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  method: string;
}

/**
 * For `ssl:`: our private key and certificate, and the CA certificate the server's must be signed
 * by (ovs-vsctl's --private-key, --certificate, --ca-cert). As in Open vSwitch, the server is
 * authenticated by its CA, not by its host name.
 */
export interface TlsFiles {
  privateKey: string;
  certificate: string;
  caCert: string;
}

/** Limits on what a server may send (defaults in `DEFAULT_LIMITS`). */
export interface ClientLimits {
  /** The longest JSON text accepted: a monitor's first answer carries every row. */
  maxMessageBytes: number;
  /** The deepest nesting accepted. */
  maxDepth: number;
  /** Give up on a server that sends nothing this long while a request waits. */
  answerMs: number;
}

/** 100 000 Ucast_Macs_Remote rows are about 21 MB in a monitor's answer; 64 MiB holds 300 000. */
export const DEFAULT_LIMITS: ClientLimits = {
  maxMessageBytes: 64 << 20,
  maxDepth: 128,
  answerMs: 10_000,
};

export class OvsdbClient extends EventEmitter {
  private nextId = 1;
  private readonly pending = new Map<number, Pending>();
  private readonly splitter: JsonSplitter;
  private closed = false;
  private answerTimer: NodeJS.Timeout | undefined;

  private constructor(
    private readonly sock: Socket,
    readonly target: string,
    private readonly limits: ClientLimits,
  ) {
    super();
    this.splitter = new JsonSplitter(limits.maxMessageBytes, limits.maxDepth);
    sock.setEncoding('utf8');
    sock.on('data', (chunk: string) => {
      this.armAnswerTimer();
      this.receive(chunk);
    });
    sock.on('error', (err) => this.end(err));
    sock.on('close', () => this.end(new OvsdbError('ECONNRESET', `${target}: connection closed`)));
  }

  /** Connect; rejects with the errno when the server is not there. */
  static connect(
    target: string,
    timeoutMs = 5000,
    tls?: TlsFiles,
    limits: Partial<ClientLimits> = {},
  ): Promise<OvsdbClient> {
    const where = parseTarget(target);
    const all = { ...DEFAULT_LIMITS, ...limits };
    return new Promise((resolve, reject) => {
      let sock: Socket;
      if ('path' in where) sock = createConnection(where.path);
      else if (!where.ssl) sock = createConnection(where.port, where.host);
      else {
        if (!tls) {
          reject(
            new OvsdbError(
              'ERR_OVSDB_TARGET',
              `${target}: ssl needs a key, a certificate and a CA`,
            ),
          );
          return;
        }
        let files: { key: Buffer; cert: Buffer; ca: Buffer };
        try {
          files = {
            key: readFileSync(tls.privateKey),
            cert: readFileSync(tls.certificate),
            ca: readFileSync(tls.caCert),
          };
        } catch (err) {
          reject(new OvsdbError('ERR_OVSDB_TLS', `${target}: ${(err as Error).message}`));
          return;
        }
        sock = tlsConnect({
          host: where.host,
          port: where.port,
          ...files,
          checkServerIdentity: () => undefined,
        });
      }
      const timer = setTimeout(() => {
        sock.destroy();
        reject(new OvsdbError('ETIMEDOUT', `${target}: no connection within ${timeoutMs} ms`));
      }, timeoutMs);
      sock.once('path' in where || !where.ssl ? 'connect' : 'secureConnect', () => {
        clearTimeout(timer);
        resolve(new OvsdbClient(sock, target, all));
      });
      sock.once('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        reject(new OvsdbError(err.code ?? 'EIO', `${target}: ${err.message}`));
      });
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** One JSON-RPC request; resolves with its result, rejects with the server's error. */
  request(method: string, params: unknown[]): Promise<unknown> {
    if (this.closed)
      return Promise.reject(new OvsdbError('ECONNRESET', `${this.target}: connection closed`));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject, method });
      if (this.pending.size === 1) this.armAnswerTimer();
      this.sock.write(JSON.stringify({ method, params, id }));
    });
  }

  /** While a request waits, the server must send something every `answerMs`. */
  private armAnswerTimer(): void {
    clearTimeout(this.answerTimer);
    this.answerTimer = undefined;
    if (this.pending.size === 0 || this.closed) return;
    this.answerTimer = setTimeout(() => {
      const waiting = this.pending.values().next().value?.method ?? 'a request';
      this.sock.destroy();
      this.end(
        new OvsdbError(
          'ETIMEDOUT',
          `${this.target}: no answer to ${waiting} in ${this.limits.answerMs} ms`,
        ),
      );
    }, this.limits.answerMs);
    this.answerTimer.unref();
  }

  listDbs(): Promise<string[]> {
    return this.request('list_dbs', []) as Promise<string[]>;
  }

  getSchema(db: string): Promise<OvsdbSchema> {
    return this.request('get_schema', [db]) as Promise<OvsdbSchema>;
  }

  /**
   * A transaction. Resolves with the operations' results; an operation that failed (RFC 7047
   * §5.2: the result has `error`) rejects with its index, error and details.
   */
  async transact(db: string, ...ops: object[]): Promise<Record<string, unknown>[]> {
    const results = (await this.request('transact', [db, ...ops])) as (Record<
      string,
      unknown
    > | null)[];
    if (!Array.isArray(results))
      throw new OvsdbError(
        'ERR_OVSDB_PROTOCOL',
        `${db} transaction: the answer is not a list of results: ${brief(results)}`,
      );
    const bad = results.findIndex(
      (r) => typeof r === 'object' && r !== null && typeof r.error === 'string',
    );
    if (bad >= 0) {
      const r = results[bad]!;
      const details = typeof r.details === 'string' ? r.details : r.details && brief(r.details);
      throw new OvsdbError(
        String(r.error),
        `${db} transaction: operation ${bad} failed: ${String(r.error)}${details ? `: ${details}` : ''}`,
        r.details,
      );
    }
    return results as Record<string, unknown>[];
  }

  /** `monitor`: the tables' current rows now, `update` events as they change. */
  monitor(db: string, monitorId: unknown, requests: Record<string, unknown>): Promise<unknown> {
    return this.request('monitor', [db, monitorId, requests]);
  }

  /** `monitor_cond` (RFC 7047 as extended by OVS): `update2` events carry row diffs. */
  monitorCond(db: string, monitorId: unknown, requests: Record<string, unknown>): Promise<unknown> {
    return this.request('monitor_cond', [db, monitorId, requests]);
  }

  echo(...params: unknown[]): Promise<unknown> {
    return this.request('echo', params);
  }

  close(): void {
    this.sock.destroy();
    this.end(undefined);
  }

  private receive(chunk: string): void {
    let texts: string[];
    try {
      texts = this.splitter.push(chunk);
    } catch (err) {
      // The stream cannot be resynchronised: end it, so the caller reconnects and resyncs.
      return this.fail(`${this.target}: ${(err as Error).message}`);
    }
    for (const text of texts) {
      let msg: Record<string, unknown>;
      try {
        msg = JSON.parse(text) as Record<string, unknown>;
      } catch {
        this.protocolError(
          new OvsdbError('ERR_OVSDB_PROTOCOL', `${this.target}: not JSON: ${text.slice(0, 80)}`),
        );
        continue;
      }
      try {
        this.dispatch(msg);
      } catch (err) {
        // Whatever handling a message throws ends this session, never the process.
        return this.fail(
          `${this.target}: a message that could not be handled: ${(err as Error).message}`,
        );
      }
    }
  }

  /** End the session for what the server sent: `close` carries the reason (ERR_OVSDB_PROTOCOL). */
  private fail(message: string): void {
    this.sock.destroy();
    this.end(new OvsdbError('ERR_OVSDB_PROTOCOL', message));
  }

  private dispatch(msg: Record<string, unknown>): void {
    if (typeof msg !== 'object' || msg === null || Array.isArray(msg))
      return this.protocolError(
        new OvsdbError('ERR_OVSDB_PROTOCOL', `${this.target}: a message that is not an object`),
      );
    if (typeof msg.method === 'string') {
      const params = Array.isArray(msg.params) ? msg.params : [];
      if (msg.method === 'echo' && msg.id !== undefined && msg.id !== null) {
        this.sock.write(JSON.stringify({ result: params, error: null, id: msg.id }));
        return;
      }
      if ((msg.method === 'update' || msg.method === 'update2') && params.length >= 2) {
        this.emit(msg.method, params[0], params[1]);
        return;
      }
      return this.protocolError(
        new OvsdbError('ERR_OVSDB_PROTOCOL', `${this.target}: unexpected ${msg.method} request`),
      );
    }
    const id = typeof msg.id === 'number' ? msg.id : NaN;
    const p = this.pending.get(id);
    if (!p)
      return this.protocolError(
        new OvsdbError(
          'ERR_OVSDB_PROTOCOL',
          `${this.target}: an answer to no request (id ${brief(msg.id)})`,
        ),
      );
    this.pending.delete(id);
    if (this.pending.size === 0) this.armAnswerTimer();
    if (msg.error !== null && msg.error !== undefined) {
      const e = msg.error as { error?: unknown; details?: unknown } | string;
      const code = typeof e === 'string' ? e : typeof e.error === 'string' ? e.error : 'error';
      const details =
        typeof e !== 'object' || e === null || e.details === undefined
          ? undefined
          : typeof e.details === 'string'
            ? e.details
            : brief(e.details);
      p.reject(
        new OvsdbError(
          code,
          `${this.target}: ${p.method}: ${code}${details ? `: ${details}` : ''}`,
          details,
        ),
      );
    } else p.resolve(msg.result);
  }

  private protocolError(err: OvsdbError): void {
    // Reported, never thrown: a listener logs it; without one it must not crash the process.
    if (this.listenerCount('protocolError') > 0) this.emit('protocolError', err);
  }

  private end(err: Error | undefined): void {
    if (this.closed) return;
    this.closed = true;
    clearTimeout(this.answerTimer);
    const why = err ?? new OvsdbError('ECONNRESET', `${this.target}: connection closed`);
    for (const p of this.pending.values()) p.reject(why);
    this.pending.clear();
    this.emit('close', err);
  }
}

/** At most 80 characters of a value from the server, for a message (its depth is bounded). */
function brief(v: unknown): string {
  const text = JSON.stringify(v) ?? String(v);
  return text.length > 80 ? `${text.slice(0, 80)}…` : text;
}
