import { createConnection } from 'node:net';
import { ControlError } from './server.js';

/**
 * The client side of the control socket (what `vtep fdb`, `vtep stats`, … use): a request line
 * out, an answer line back (`{"ok":true,"data":…}` or `{"ok":false,"code","error","field"}`),
 * or, for a subscription, one answer and then an event per line.
 */

/** A refusal from the server, as the error it describes. */
function answerError(a: { code?: unknown; error?: unknown; field?: unknown } | null): ControlError {
  return new ControlError(
    typeof a?.code === 'string' ? a.code : 'ERR_FAILED',
    typeof a?.error === 'string' ? a.error : 'failed',
    typeof a?.field === 'string' ? a.field : undefined,
  );
}

/**
 * A Unix socket whose accept queue is full (a flood of connections, which the server turns away
 * at its cap as fast as it can) refuses a non-blocking connect with EAGAIN, where a blocking one
 * would wait its turn. So wait: try again after 5 ms, doubling to 100 ms, until `ms` have passed.
 */
async function whileBusy<T>(ms: number, attempt: (left: number) => Promise<T>): Promise<T> {
  const deadline = Date.now() + ms;
  for (let wait = 5; ; wait = Math.min(2 * wait, 100)) {
    try {
      return await attempt(deadline - Date.now());
    } catch (err) {
      if ((err as ControlError).code !== 'EAGAIN' || Date.now() + wait >= deadline) throw err;
      await new Promise((r) => setTimeout(r, wait));
    }
  }
}

/** One request, one answer. Throws ControlError with the server's code on failure. */
export async function request(
  path: string,
  req: Record<string, unknown>,
  timeoutMs = 5000,
): Promise<unknown> {
  return whileBusy(timeoutMs, (left) => requestOnce(path, req, left));
}

function requestOnce(path: string, req: Record<string, unknown>, timeoutMs: number) {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    let buf = '';
    const fail = (err: ControlError) => {
      clearTimeout(timer);
      sock.destroy();
      reject(err);
    };
    const timer = setTimeout(
      () => fail(new ControlError('ETIMEDOUT', `control socket ${path}: no answer`)),
      timeoutMs,
    );
    sock.setEncoding('utf8');
    sock.once('error', (err: NodeJS.ErrnoException) => {
      const hint =
        err.code === 'ENOENT' || err.code === 'ECONNREFUSED'
          ? ' (is vtep running with this --control path?)'
          : '';
      fail(new ControlError(err.code ?? 'EIO', `control socket ${path}: ${err.message}${hint}`));
    });
    sock.once('end', () => {
      if (!buf.includes('\n'))
        fail(
          new ControlError('ERR_BAD_ANSWER', `control socket ${path}: closed without an answer`),
        );
    });
    sock.on('data', (chunk: string) => {
      buf += chunk;
      const nl = buf.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      sock.end();
      let res: { ok?: unknown; data?: unknown; code?: unknown; error?: unknown; field?: unknown };
      try {
        res = JSON.parse(buf.slice(0, nl));
      } catch {
        return fail(
          new ControlError(
            'ERR_BAD_ANSWER',
            `control socket ${path}: the answer is not JSON: ${JSON.stringify(buf.slice(0, 80))}`,
          ),
        );
      }
      if (res?.ok === true) resolve(res.data);
      else reject(answerError(res));
    });
    sock.write(JSON.stringify(req) + '\n');
  });
}

/**
 * Subscribe (`vtep monitor`): `onEvent` gets every event line until the connection ends, then
 * the promise resolves. Throws ControlError if the request is refused.
 */
export async function subscribe(
  path: string,
  req: Record<string, unknown>,
  onEvent: (event: Record<string, unknown>) => void,
  /** `signal` ends the subscription (the promise resolves); `onReady` once it is on. */
  opts: { signal?: AbortSignal; onReady?: () => void } = {},
): Promise<void> {
  return whileBusy(5000, () => subscribeOnce(path, req, onEvent, opts));
}

function subscribeOnce(
  path: string,
  req: Record<string, unknown>,
  onEvent: (event: Record<string, unknown>) => void,
  opts: { signal?: AbortSignal; onReady?: () => void },
): Promise<void> {
  return new Promise((resolve, reject) => {
    const sock = createConnection(path);
    opts.signal?.addEventListener('abort', () => sock.destroy(), { once: true });
    let buf = '';
    let answered = false;
    sock.setEncoding('utf8');
    sock.once('error', (err: NodeJS.ErrnoException) =>
      reject(new ControlError(err.code ?? 'EIO', `control socket ${path}: ${err.message}`)),
    );
    sock.on('close', () => resolve());
    sock.on('data', (chunk: string) => {
      buf += chunk;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let obj: Record<string, unknown>;
        try {
          obj = JSON.parse(line);
        } catch {
          sock.destroy();
          return reject(
            new ControlError(
              'ERR_BAD_ANSWER',
              `control socket ${path}: not JSON: ${line.slice(0, 80)}`,
            ),
          );
        }
        if (!answered) {
          answered = true;
          if (obj.ok !== true) {
            sock.destroy();
            return reject(answerError(obj));
          }
          opts.onReady?.();
          continue;
        }
        onEvent(obj);
      }
    });
    sock.write(JSON.stringify(req) + '\n');
  });
}
