// The control socket client (src/control/client.ts): what a broken answer becomes.
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { request } from '../../src/control/client.js';

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
