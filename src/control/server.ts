import { chmodSync, existsSync, lstatSync, unlinkSync, type Stats } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';
import { dirname } from 'node:path';
import { native } from '../io/native.js';

/**
 * The control socket: a unix socket (mode 0600, so only its owner can change the FDB) that
 * speaks one JSON object per line. A request is `{"cmd": "...", ...args}`; the answer is
 * `{"ok": true, "data": …}` or `{"ok": false, "error": "...", "code": "...", "field"?: "..."}`.
 *
 * It shares the thread with the data path, so it must never hog it: a connection's requests are
 * answered one at a time, one per event-loop turn; a client that does not read its answers stops
 * being served (and read) once a bounded amount of output waits for it; long lists are written
 * in chunks with the loop turning in between; idle connections are closed; and `close()` ends
 * every connection at once, so a stopping vtep never waits for a client.
 */

/** A request field's type. Fields not listed are an error, so is a value of another type. */
export type FieldType = 'integer' | 'string' | 'boolean' | 'strings';

export interface Command {
  /** Allowed fields (besides `cmd`): name → type; a name ending in `?` is optional. */
  fields: Record<string, FieldType>;
  /** It changes the running endpoint: each success is reported to `onChange` (the audit trail). */
  changes?: boolean;
  /** Returns the answer's `data`: a value, a promise of one, or a `Rows` stream. */
  run(args: Record<string, unknown>): unknown;
}

/** Who is at the other end of a control connection (SO_PEERCRED: the kernel's word for it). */
export interface Peer {
  pid: number;
  uid: number;
  gid: number;
}

/** A change made through the control socket: what was asked, by whom, and what it answered. */
export interface ChangeRequest {
  cmd: string;
  args: Record<string, unknown>;
  peer?: Peer;
  data: unknown;
}

function peerOf(sock: Socket): Peer | undefined {
  const fd = (sock as unknown as { _handle?: { fd?: number } })._handle?.fd;
  if (typeof fd !== 'number' || fd < 0) return undefined;
  const c = native().peerCred(fd);
  return typeof c === 'number' ? undefined : { pid: c[0], uid: c[1], gid: c[2] };
}

/**
 * A long list, produced a chunk at a time: written as one JSON array, with the event loop
 * turning between chunks so forwarding goes on while a big table is listed.
 */
export class Rows {
  constructor(readonly chunks: Iterable<unknown[]>) {}
}

/**
 * A stream of events on the connection (`vtep monitor`): after the answer line, one JSON object
 * per line until either side closes. `start` gets a `send` and returns how to stop. A client
 * that does not keep up loses events (counted, and said in a `{"event":"lost","count":N}`
 * line once it reads again) instead of growing our memory.
 */
export class Subscription {
  constructor(readonly start: (send: (event: object) => void) => () => void) {}
}

export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
    /** The request field at fault (`vni`, `mac`, …), for errors about the caller's input. */
    readonly field?: string,
  ) {
    super(message);
  }
}

/** An error about one request field: the CLI maps `field` back to the flag the user typed. */
export function argError(field: string, value: unknown, reason: string): ControlError {
  return new ControlError('ERR_ARG', `invalid ${field} ${JSON.stringify(value)}: ${reason}`, field);
}

export interface ControlLimits {
  /** Longest request line, bytes. */
  maxRequest?: number;
  /** Requests read ahead per connection before reading pauses. */
  maxQueued?: number;
  /** Unread answer bytes per connection before serving it pauses. */
  highWater?: number;
  /** A connection with nothing in flight for this long is closed (ms). */
  idleMs?: number;
  /**
   * Connections at once. At the cap a newcomer takes the place of the oldest connection that
   * has not sent a request yet (half-open clients cannot lock `vtep status` out), or is refused
   * when every one is at work.
   */
  maxClients?: number;
  /** Called when the cap turned a connection away (the caller logs it, rate-limited). */
  onLimit?: () => void;
  /** Called after each successful request of a command that `changes` the endpoint. */
  onChange?: (c: ChangeRequest) => void;
}

type Hooks = 'onLimit' | 'onChange';

const DEFAULTS: Required<Omit<ControlLimits, Hooks>> = {
  maxRequest: 64 * 1024,
  maxQueued: 32,
  highWater: 1 << 20,
  idleMs: 30_000,
  maxClients: 128,
};

async function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

function kindOf(st: Stats): string {
  if (st.isFile()) return 'a regular file';
  if (st.isDirectory()) return 'a directory';
  if (st.isSymbolicLink()) return 'a symbolic link';
  return 'not a socket';
}

type Limits = Required<Omit<ControlLimits, Hooks>> & Pick<ControlLimits, Hooks>;

export class ControlServer {
  /** Each connection: whether it has sent a request, and whether one is being answered. */
  private readonly clients = new Map<Socket, { requested: boolean; busy: boolean }>();

  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async listen(
    path: string,
    commands: Record<string, Command>,
    limits: ControlLimits = {},
  ): Promise<ControlServer> {
    let st: Stats | undefined;
    try {
      st = lstatSync(path);
    } catch {
      /* nothing there: the usual case */
    }
    if (st !== undefined) {
      // Only a socket left by a vtep that died may be replaced: `--control /etc/vtep.yaml` must
      // not delete the configuration.
      if (!st.isSocket())
        throw new ControlError(
          'ERR_CONTROL_PATH',
          `control socket ${path}: ${kindOf(st)} is there; refusing to replace it (choose another --control path)`,
        );
      if (await inUse(path))
        throw new ControlError(
          'EADDRINUSE',
          `control socket ${path} is in use: is another vtep running?`,
        );
      unlinkSync(path); // stale, from a process that died
    } else if (!existsSync(dirname(path))) {
      throw new ControlError(
        'ENOENT',
        `control socket ${path}: directory ${dirname(path)} does not exist`,
      );
    }
    const lim: Limits = { ...DEFAULTS, ...limits };
    let self: ControlServer | undefined;
    const server = createServer((sock) => self!.serve(sock, commands, lim));
    self = new ControlServer(server, path);
    const old = process.umask(0o177); // the socket is created 0600, with no window at 0755
    try {
      await new Promise<void>((resolve, reject) => {
        server.once('error', reject);
        server.listen(path, () => resolve());
      });
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      throw new ControlError(e.code ?? 'EIO', `control socket ${path}: ${e.message}`);
    } finally {
      process.umask(old);
    }
    chmodSync(path, 0o600);
    return self;
  }

  /** Connections open now. */
  get connections(): number {
    return this.clients.size;
  }

  /** Stop listening and end every connection now; what clients do cannot delay it. */
  async close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    for (const c of this.clients.keys()) c.destroy();
    this.clients.clear();
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
    await closed;
  }

  /** Room for one more connection: the oldest that never sent a request makes it, if any. */
  private admit(lim: Limits): boolean {
    if (this.clients.size < lim.maxClients) return true;
    lim.onLimit?.();
    // The oldest that never asked anything, else the oldest with nothing in flight.
    let victim: Socket | undefined;
    for (const [c, st] of this.clients)
      if (!st.requested) {
        victim = c;
        break;
      } else if (!st.busy && c.writableLength === 0) victim ??= c;
    if (victim === undefined) return false;
    this.clients.delete(victim);
    victim.destroy();
    return true;
  }

  private serve(sock: Socket, commands: Record<string, Command>, lim: Limits) {
    if (!this.admit(lim)) {
      sock.end(
        JSON.stringify({ ok: false, code: 'EBUSY', error: 'too many control connections' }) + '\n',
      );
      return;
    }
    const state = { requested: false, busy: false };
    this.clients.set(sock, state);
    const peer = peerOf(sock);
    let buf = '';
    const queue: string[] = [];
    let busy = false;
    let ended = false;
    sock.setEncoding('utf8');
    // No byte read or written for idleMs: an idle client, or one that stopped reading answers.
    sock.setTimeout(lim.idleMs, () => sock.destroy());
    sock.on('error', () => sock.destroy());
    sock.on('close', () => {
      if (this.clients.get(sock) === state) this.clients.delete(sock);
      queue.length = 0;
    });
    const finish = (err: ControlError) => {
      ended = true;
      queue.length = 0;
      sock.end(JSON.stringify({ ok: false, code: err.code, error: err.message }) + '\n');
    };
    const pump = () => {
      if (busy || sock.destroyed || queue.length === 0) return;
      if (sock.writableLength > lim.highWater) {
        // The client is not reading: stop serving it (and reading from it) until it does.
        sock.once('drain', pump);
        return;
      }
      busy = state.busy = true;
      const line = queue.shift()!;
      if (queue.length < lim.maxQueued && sock.isPaused() && !ended) sock.resume();
      void respond(sock, line, commands, lim, peer).then(() => {
        busy = false;
        state.busy = queue.length > 0;
        setImmediate(pump);
      });
    };
    sock.on('data', (chunk: string) => {
      if (ended) return;
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        state.requested = true;
        queue.push(buf.slice(0, nl));
        buf = buf.slice(nl + 1);
      }
      if (buf.length > lim.maxRequest)
        return finish(
          new ControlError('ERR_TOO_LONG', `request longer than ${lim.maxRequest} bytes`),
        );
      if (queue.length >= lim.maxQueued) sock.pause();
      setImmediate(pump);
    });
  }
}

/** Check a request against its command's fields; returns the args without `cmd`. */
function checkFields(req: Record<string, unknown>, fields: Record<string, FieldType>) {
  const args: Record<string, unknown> = {};
  for (const [name, value] of Object.entries(req)) {
    if (name === 'cmd') continue;
    const type = fields[name] ?? fields[`${name}?`];
    if (type === undefined) {
      const known = Object.keys(fields).map((f) => f.replace(/\?$/, ''));
      throw argError(name, value, `unknown field (known: ${known.join(', ') || 'none'})`);
    }
    const ok =
      type === 'integer'
        ? Number.isSafeInteger(value)
        : type === 'string'
          ? typeof value === 'string'
          : type === 'strings'
            ? Array.isArray(value) && value.every((v) => typeof v === 'string')
            : typeof value === 'boolean';
    if (!ok)
      throw argError(
        name,
        value,
        type === 'strings'
          ? 'must be a list of strings'
          : `must be ${type === 'integer' ? 'an' : 'a'} ${type}`,
      );
    args[name] = value;
  }
  for (const f of Object.keys(fields))
    if (!f.endsWith('?') && args[f] === undefined)
      throw new ControlError('ERR_ARG', `missing ${f}`, f);
  return args;
}

function errorAnswer(err: unknown): Record<string, unknown> {
  const e = err as { code?: string; message?: string; field?: string };
  return {
    ok: false,
    code: e.code ?? 'ERR_FAILED',
    error: e.message ?? String(err),
    ...(e.field ? { field: e.field } : {}),
  };
}

/** Answer one request line; resolves once the answer is handed to the socket. */
async function respond(
  sock: Socket,
  line: string,
  commands: Record<string, Command>,
  lim: Limits,
  peer: Peer | undefined,
): Promise<void> {
  const highWater = lim.highWater;
  let data: unknown;
  let changed: ChangeRequest | undefined;
  try {
    const r = parseRequest(line);
    const cmd = typeof r.cmd === 'string' ? r.cmd : '';
    const c = Object.hasOwn(commands, cmd) ? commands[cmd] : undefined;
    if (!c)
      throw new ControlError(
        'ERR_UNKNOWN_COMMAND',
        `unknown command ${JSON.stringify(r.cmd)} (known: ${Object.keys(commands).join(', ')})`,
      );
    const args = checkFields(r, c.fields);
    data = await c.run(args);
    if (c.changes) changed = { cmd, args, peer, data };
  } catch (err) {
    if (!sock.destroyed) sock.write(JSON.stringify(errorAnswer(err)) + '\n');
    return;
  }
  if (changed) lim.onChange?.(changed);
  if (sock.destroyed) return;
  if (data instanceof Subscription) return stream(sock, data, highWater);
  if (data instanceof Rows) return rows(sock, data, highWater);
  sock.write(JSON.stringify({ ok: true, data: data ?? null }) + '\n');
}

function parseRequest(line: string): Record<string, unknown> {
  let req: unknown;
  try {
    req = JSON.parse(line);
  } catch {
    throw new ControlError('ERR_BAD_REQUEST', 'request is not JSON');
  }
  if (typeof req !== 'object' || req === null || Array.isArray(req))
    throw new ControlError('ERR_BAD_REQUEST', 'request is not a JSON object');
  return req as Record<string, unknown>;
}

/** A subscription: events as lines until the client goes; what it does not read is counted. */
async function stream(sock: Socket, sub: Subscription, highWater: number): Promise<void> {
  sock.setTimeout(0); // a monitor is quiet while nothing happens: not idle
  sock.write(JSON.stringify({ ok: true, data: 'subscribed' }) + '\n');
  let lost = 0;
  const stop = sub.start((event) => {
    if (sock.destroyed) return;
    if (sock.writableLength > highWater) {
      lost++;
      return;
    }
    if (lost) {
      sock.write(JSON.stringify({ event: 'lost', count: lost }) + '\n');
      lost = 0;
    }
    sock.write(JSON.stringify(event) + '\n');
  });
  sock.once('close', stop);
  // Nothing more is read from a monitoring connection: the stream is the answer.
  await new Promise((resolve) => sock.once('close', resolve));
}

/**
 * Streamed rows: `{"ok":true,"data":[` row, row, … `]}`, a chunk per loop turn, and waiting for
 * the client whenever it has more than highWater bytes unread.
 */
async function rows(sock: Socket, data: Rows, highWater: number): Promise<void> {
  sock.write('{"ok":true,"data":[');
  let first = true;
  try {
    for (const chunk of data.chunks) {
      if (chunk.length) {
        const text = chunk.map((row) => JSON.stringify(row)).join(',');
        sock.write(first ? text : ',' + text);
        first = false;
      }
      await new Promise<void>((resolve) => {
        if (sock.destroyed || sock.writableLength <= highWater) setImmediate(resolve);
        else {
          sock.once('drain', resolve);
          sock.once('close', resolve);
        }
      });
      if (sock.destroyed) return;
    }
  } catch (err) {
    // The answer has begun; the only honest thing left is to end the connection.
    sock.destroy(err as Error);
    return;
  }
  sock.write(']}\n');
}
