// The service's log lines, as journald, a terminal and a log shipper get them: a child process
// whose stderr is a file, with JOURNAL_STREAM naming that file as systemd would.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, openSync, readFileSync, rmSync, statSync, closeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import t from 'tap';
import { distFile } from '../../src/lab/peers.js';
import { makeLogger, resolveFormat } from '../../src/util/logger.js';

const dir = mkdtempSync(join(tmpdir(), 'vtep-log-'));
t.teardown(() => rmSync(dir, { recursive: true, force: true }));

/** Run a child that logs one line per level; its stderr is a file. */
function child(format: string, env: (file: string) => Record<string, string>): string[] {
  const file = join(dir, `${format}-${Math.random()}.log`);
  const fd = openSync(file, 'w');
  const logger = distFile('src', 'util', 'logger.js');
  const script = `
    const { makeLogger } = await import(${JSON.stringify(logger)});
    const log = makeLogger({ level: 'debug', format: ${JSON.stringify(format)} });
    log('debug', 'drop', 'drop vni_unknown vni 9', { reason: 'vni_unknown', vni: 9 });
    log('info', 'start', 'vtep: listening\\non two lines', { underlay: '192.0.2.1:4789' });
    log('warn', 'mtu', 'mtu too big', { mtu: 9000, note: 'has spaces' });
    log('error', 'worker_died', 'vtep: worker 1 died', {});`;
  const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
    stdio: ['ignore', 'ignore', fd],
    env: { ...process.env, NODE_OPTIONS: '', ...env(file) },
  });
  closeSync(fd);
  t.equal(r.status, 0, `child (${format}) ran`);
  return readFileSync(file, 'utf8').split('\n').filter(Boolean);
}

const stream = (file: string) => {
  const st = statSync(file, { bigint: true });
  return `${st.dev}:${st.ino}`;
};

t.test(
  'under journald (JOURNAL_STREAM is our stderr): a syslog priority on every line',
  async (t) => {
    const lines = child('auto', (f) => ({ JOURNAL_STREAM: stream(f) }));
    t.same(
      lines.map((l) => l.slice(0, 3)),
      ['<7>', '<6>', '<4>', '<3>'],
      'debug 7, info 6, warning 4, err 3',
    );
    t.equal(lines[0], '<7>drop vni_unknown vni 9 [drop reason=vni_unknown vni=9]');
    t.equal(
      lines[1],
      '<6>vtep: listening on two lines [start underlay=192.0.2.1:4789]',
      'a newline in a message would be two journal entries: folded',
    );
    t.equal(lines[2], '<4>mtu too big [mtu mtu=9000 note="has spaces"]');
  },
);

t.test(
  'JOURNAL_STREAM of another file (a child of the service with its own stderr): json',
  async (t) => {
    const other = join(dir, 'other');
    closeSync(openSync(other, 'w'));
    const lines = child('auto', () => ({ JOURNAL_STREAM: stream(other) }));
    t.equal(lines.length, 4);
    t.match(JSON.parse(lines[1]), {
      level: 'info',
      event: 'start',
      msg: /listening/,
      underlay: '192.0.2.1:4789',
    });
  },
);

t.test('text: one line per event, time, level, message, then the fields', async (t) => {
  const lines = child('text', () => ({}));
  t.equal(lines.length, 4, 'four events, four lines');
  t.match(lines[2], /^\d\d:\d\d:\d\d\.\d{3} WARN  mtu too big \[mtu mtu=9000 note="has spaces"\]$/);
});

t.test('json and the level floor', async (t) => {
  const got: string[] = [];
  t.equal(resolveFormat({ level: 'info', format: 'auto', env: {}, isTTY: true }), 'text');
  t.equal(resolveFormat({ level: 'info', format: 'auto', env: {}, isTTY: false }), 'json');
  t.equal(resolveFormat({ level: 'info', format: 'journal' }), 'journal');
  t.equal(
    resolveFormat({
      level: 'info',
      format: 'auto',
      env: { JOURNAL_STREAM: 'nonsense' },
      isTTY: false,
    }),
    'json',
  );
  const file = join(dir, 'floor.log');
  const fd = openSync(file, 'w');
  const log = makeLogger({ level: 'warn', format: 'text', fd });
  log('info', 'x', 'not shown');
  log('warn', 'y', 'shown');
  closeSync(fd);
  got.push(...readFileSync(file, 'utf8').split('\n').filter(Boolean));
  t.equal(got.length, 1);
  t.match(got[0], /WARN  shown \[y\]$/);
});
