// The BFD state machine (RFC 5880 §6.8): two sessions brought up against each other, the
// detection time, a neighbour that signals down, polls; and the manager's timer and sync.
import t from 'tap';
import { Bfd, BfdSession } from '../../src/daemon/bfd.js';
import { makeRemote } from '../../src/fdb/remote.js';
import { BfdDiag, BfdState, bfdOffset, parseBfd, type BfdPacket } from '../../src/wire/bfd.js';

const fast = { intervalMs: 100, multiplier: 3 };

/** Exchange packets between a and b at `now` until nothing is due. */
function exchange(a: BfdSession, b: BfdSession, now: number): void {
  for (let i = 0; i < 6; i++) {
    if (a.due(now)) b.receive(a.send(now, 0), now);
    if (b.due(now)) a.receive(b.send(now, 0), now);
  }
}

t.test('down → init → up, then detection, then up again', async (t) => {
  const a = new BfdSession(fast, 1);
  const b = new BfdSession(fast, 2);
  let now = 0;
  const first = a.send(now, 0);
  t.match(
    first,
    { state: BfdState.DOWN, yourDisc: 0, desiredMinTx: 1_000_000, requiredMinRx: 100_000 },
    'not up: a second at most',
  );
  t.ok(b.receive(first, now), 'b: down → init');
  t.equal(b.state, BfdState.INIT);
  const back = b.send(now, 0);
  t.equal(back.yourDisc, 1, 'b answers with our discriminator');
  t.ok(a.receive(back, now));
  t.equal(a.state, BfdState.UP, 'a: down + remote init → up');
  const polled = a.send(now, 0);
  t.ok(polled.poll, 'a announces its faster interval by a poll');
  t.equal(polled.desiredMinTx, 100_000);
  b.receive(polled, now);
  t.equal(b.state, BfdState.UP, 'b: init + remote up → up');
  t.ok(b.due(now), 'b owes a final at once');
  const fin = b.send(now, 0);
  t.ok(fin.final && !fin.poll);
  a.receive(fin, now);
  t.notOk(a.send(now, 0).poll, 'the poll is over');
  t.equal(a.detectMs(), 300, 'detect: 3 × 100 ms');
  t.same(a.status(5000), { state: 'up', diag: 0, remoteState: 'up', detectMs: 300, vni: 5000 });
  // b falls silent: a gives up after the detection time, not before
  now += 299;
  t.notOk(a.expire(now));
  now += 2;
  t.ok(a.expire(now));
  t.equal(a.state, BfdState.DOWN);
  t.equal(a.diag, BfdDiag.DETECT_EXPIRED);
  t.notOk(a.expire(now + 1000), 'once');
  // a tells b it is down: b goes down (neighbour signalled), then both come up again
  b.receive(a.send(now, 0), now);
  t.equal(b.state, BfdState.DOWN);
  t.equal(b.diag, BfdDiag.NEIGHBOR_DOWN);
  now += 1000;
  exchange(a, b, now);
  now += 1000;
  exchange(a, b, now);
  t.same([a.state, b.state], [BfdState.UP, BfdState.UP], 'up again');
});

t.test('packets for another session, admin-down, and the transmit schedule', async (t) => {
  const a = new BfdSession(fast, 1);
  const other: BfdPacket = {
    diag: 0,
    state: BfdState.DOWN,
    poll: false,
    final: false,
    multiplier: 3,
    myDisc: 9,
    yourDisc: 77,
    desiredMinTx: 1e6,
    requiredMinRx: 1e5,
  };
  t.notOk(a.receive(other, 0), 'your discriminator is not ours: ignored');
  t.equal(a.state, BfdState.DOWN);
  a.receive({ ...other, yourDisc: 0, state: BfdState.ADMIN_DOWN }, 0);
  t.equal(a.state, BfdState.DOWN, 'admin-down from a down session: stays down');
  a.receive({ ...other, yourDisc: 0 }, 0);
  t.equal(a.state, BfdState.INIT);
  t.ok(a.receive({ ...other, yourDisc: 1, state: BfdState.ADMIN_DOWN }, 0));
  t.same([a.state, a.diag], [BfdState.DOWN, BfdDiag.NEIGHBOR_DOWN]);
  a.send(0, 0);
  t.notOk(a.due(999), 'not up: once a second');
  t.ok(a.due(1000));
  a.send(1000, 25);
  t.ok(a.due(1750), 'jitter takes up to a quarter off');
  a.state = BfdState.ADMIN_DOWN;
  t.notOk(a.expire(1e9), 'admin-down never expires');
  t.notOk(a.receive({ ...other, yourDisc: 0 }, 0), 'and ignores what comes');
  // a remote asking for a slower rate is obeyed
  const b = new BfdSession(fast, 2);
  b.receive({ ...other, yourDisc: 0, requiredMinRx: 2_000_000 }, 0);
  b.send(0, 0);
  t.notOk(b.due(1999));
  t.ok(b.due(2000));
});

t.test(
  'the manager: sessions kept to the configuration, a timer that sends and detects',
  async (t) => {
    const A = makeRemote('192.0.2.1');
    const C = makeRemote('192.0.2.3');
    let now = 0;
    const sent: { vni: number; remote: string; p: BfdPacket }[] = [];
    const changes: string[] = [];
    const bfd = new Bfd(
      {
        send: (vni, remote, frame) => {
          const at = bfdOffset(frame, 0, frame.length);
          sent.push({ vni, remote: remote.key, p: parseBfd(frame, at, 24) as BfdPacket });
        },
        changed: (remote, from, s) => changes.push(`${remote.key} ${from}->${s.state}`),
      },
      () => now,
    );
    t.teardown(() => bfd.close());
    bfd.sync([
      { remote: A, vni: 5000, settings: fast },
      { remote: C, vni: 5001, settings: { intervalMs: 2000, multiplier: 5 } },
    ]);
    await new Promise((r) => setTimeout(r, 60));
    t.same(
      sent.map((s) => [s.vni, s.remote, s.p.state]).sort(),
      [
        [5000, A.key, BfdState.DOWN],
        [5001, C.key, BfdState.DOWN],
      ],
      'each session sends in its VNI',
    );
    t.equal(bfd.status(A.key)?.state, 'down');
    t.same(bfd.down().sort(), [A.key, C.key]);
    // A answers: init, then up
    const mine = sent.find((s) => s.remote === A.key)!.p.myDisc;
    const reply = (state: number, yourDisc: number) => {
      const f = Buffer.alloc(24);
      return {
        f,
        p: {
          diag: 0,
          state,
          poll: false,
          final: false,
          multiplier: 3,
          myDisc: 42,
          yourDisc,
          desiredMinTx: 100_000,
          requiredMinRx: 100_000,
        },
      };
    };
    const { emitBfd } = await import('../../src/wire/bfd.js');
    const r1 = reply(BfdState.DOWN, 0);
    emitBfd(r1.p, r1.f, 0);
    bfd.receive(A, r1.f, 0, 24);
    const r2 = reply(BfdState.UP, mine);
    emitBfd(r2.p, r2.f, 0);
    bfd.receive(A, r2.f, 0, 24);
    t.same(changes, [`${A.key} 1->2`, `${A.key} 2->3`]);
    t.same(bfd.down(), [C.key]);
    bfd.receive(makeRemote('192.0.2.99'), r2.f, 0, 24); // no session: ignored
    bfd.receive(A, Buffer.alloc(24), 0, 24); // not a valid packet: ignored
    now += 400;
    await new Promise((r) => setTimeout(r, 60));
    t.same(changes.at(-1), `${A.key} 3->1`, 'silent past the detection time: down');
    bfd.sync([{ remote: C, vni: 5002, settings: fast }]);
    t.equal(bfd.status(A.key), undefined, 'a remote gone from the configuration: its session too');
    t.equal(bfd.status(C.key)?.vni, 5002);
  },
);
