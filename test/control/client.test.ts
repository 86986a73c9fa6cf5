// The control socket client (src/control/client.ts): what a broken answer becomes, and a
// server whose accept queue is full.
import { mkdtempSync, rmSync } from 'node:fs';
import { spawn } from 'node:child_process';
import { createConnection, createServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request, subscribe } from '../../src/control/client.js';
import { until } from '../../src/lab/sh.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-control-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

t.test('the client turns a broken answer into one error line', async (t) => {
  const path = join(dir, 'broken.sock');
  const s = createServer((c) => c.end('<html>\n')).listen(path);
  await new Promise((r) => s.once('listening', r));
  t.teardown(() => s.close());
  await t.rejects(request(path, { cmd: 'x' }), {
    code: 'ERR_BAD_ANSWER',
    message: /the answer is not JSON: "<html>\\n"/,
  });
  const path2 = join(dir, 'mute.sock');
  const s2 = createServer((c) => c.end()).listen(path2);
  await new Promise((r) => s2.once('listening', r));
  t.teardown(() => s2.close());
  await t.rejects(request(path2, { cmd: 'x' }), {
    code: 'ERR_BAD_ANSWER',
    message: /closed without an answer/,
  });
  const path3 = join(dir, 'slow.sock');
  const s3 = createServer(() => {}).listen(path3);
  await new Promise((r) => s3.once('listening', r));
  t.teardown(() => s3.close());
  await t.rejects(request(path3, { cmd: 'x' }, 100), { code: 'ETIMEDOUT' });
});

t.test('a full accept queue (EAGAIN) is waited out, as a blocking connect would', async (t) => {
  // A listening socket that accepts nothing for 400 ms, its queue filled by idle connections:
  // a connect meets EAGAIN until the server takes them, answering each with one line.
  const path = join(dir, 'busy.sock');
  const py = spawn('python3', [
    '-c',
    [
      'import socket, time, threading',
      's = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)',
      `s.bind('${path}'); s.listen(0); print('ready', flush=True)`,
      'time.sleep(0.4)',
      'def serve(c):',
      '    c.recv(4096); c.sendall(b\'{"ok":true,"data":"served"}\\n\'); c.close()',
      'while True:',
      '    c, _ = s.accept(); threading.Thread(target=serve, args=(c,)).start()',
    ].join('\n'),
  ]);
  t.teardown(() => py.kill('SIGKILL'));
  let out = '';
  py.stdout.on('data', (d) => (out += d));
  await until(() => out.includes('ready'), 5000);
  const idle: Socket[] = [];
  t.teardown(() => idle.forEach((c) => c.destroy()));
  // fill the queue: connect until one is refused with EAGAIN
  let refused = false;
  for (let i = 0; i < 16 && !refused; i++) {
    const c = createConnection(path);
    idle.push(c);
    refused = await new Promise<boolean>((r) => {
      c.once('connect', () => r(false));
      c.once('error', (e: NodeJS.ErrnoException) => r(e.code === 'EAGAIN'));
    });
  }
  t.ok(refused, 'the queue is full: a plain connect is refused with EAGAIN');
  t.equal(await request(path, { cmd: 'status' }), 'served', 'request waits and is answered');
  await subscribe(path, { cmd: 'monitor' }, () => {}, {
    onReady: () => t.pass('subscribe waits and is answered'),
  });
  // a refusal that is not about a full queue is not retried
  await t.rejects(request(join(dir, 'nobody.sock'), { cmd: 'x' }), { code: 'ENOENT' });
});
