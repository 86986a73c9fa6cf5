import { chmodSync, existsSync, unlinkSync } from 'node:fs';
import { createConnection, createServer, type Server, type Socket } from 'node:net';

/**
 * The control socket: a unix socket (mode 0600, so only its owner can change the FDB) that
 * speaks one JSON object per line. A request is `{"cmd": "...", ...args}`; the answer is
 * `{"ok": true, "data": …}` or `{"ok": false, "error": "...", "code": "..."}`.
 */

export type Handler = (args: Record<string, unknown>) => unknown;

export class ControlError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const MAX_REQUEST = 64 * 1024;

async function inUse(path: string): Promise<boolean> {
  return new Promise((resolve) => {
    const c = createConnection(path);
    c.once('connect', () => (c.destroy(), resolve(true)));
    c.once('error', () => resolve(false));
  });
}

export class ControlServer {
  private constructor(
    private readonly server: Server,
    readonly path: string,
  ) {}

  static async listen(path: string, handlers: Record<string, Handler>): Promise<ControlServer> {
    if (existsSync(path)) {
      if (await inUse(path))
        throw new ControlError(
          'EADDRINUSE',
          `control socket ${path} is in use: is another vtep running?`,
        );
      unlinkSync(path); // stale, from a process that died
    }
    const server = createServer((sock) => serve(sock, handlers));
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
    return new ControlServer(server, path);
  }

  async close(): Promise<void> {
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
    try {
      unlinkSync(this.path);
    } catch {
      /* already gone */
    }
  }
}

function serve(sock: Socket, handlers: Record<string, Handler>): void {
  let buf = '';
  sock.setEncoding('utf8');
  sock.on('error', () => sock.destroy());
  sock.on('data', (chunk: string) => {
    buf += chunk;
    if (buf.length > MAX_REQUEST) {
      sock.end(
        JSON.stringify({ ok: false, code: 'ERR_TOO_LONG', error: 'request too long' }) + '\n',
      );
      return;
    }
    let nl: number;
    while ((nl = buf.indexOf('\n')) >= 0) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      sock.write(JSON.stringify(answer(line, handlers)) + '\n');
    }
  });
}

function answer(line: string, handlers: Record<string, Handler>): unknown {
  let req: Record<string, unknown>;
  try {
    req = JSON.parse(line);
  } catch {
    return { ok: false, code: 'ERR_BAD_REQUEST', error: 'request is not JSON' };
  }
  const cmd = typeof req?.cmd === 'string' ? req.cmd : '';
  const h = Object.hasOwn(handlers, cmd) ? handlers[cmd] : undefined;
  if (!h)
    return {
      ok: false,
      code: 'ERR_UNKNOWN_COMMAND',
      error: `unknown command ${JSON.stringify(cmd)} (known: ${Object.keys(handlers).join(', ')})`,
    };
  try {
    return { ok: true, data: h(req) };
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return { ok: false, code: e.code ?? 'ERR_FAILED', error: e.message ?? String(err) };
  }
}

/** One request, one answer. Throws ControlError with the server's code on failure. */
export async function request(
  path: string,
  req: Record<string, unknown>,
  timeoutMs = 5000,
): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const timer = setTimeout(
      () => (sock.destroy(), reject(new ControlError('ETIMEDOUT', `no answer on ${path}`))),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.once('error', (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const hint =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? ' (is vtep running with this --control path?)'
          : '';
      reject(new ControlError(err.code ?? 'EIO', `control socket ${path}: ${err.message}${hint}`));
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      const res = JSON.parse(buf.slice(0, nl)) as {
        ok: boolean;
        data?: unknown;
        code?: string;
        error?: string;
      };
      if (res.ok) resolve(res.data);
      else reject(new ControlError(res.code ?? 'ERR_FAILED', res.error ?? 'failed'));
    });
    sock.write(JSON.stringify(req) + '\n');
  });
}
