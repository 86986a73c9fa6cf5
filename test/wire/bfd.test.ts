// BFD control packets (RFC 5880 §4.1) and their RFC 8971 frame: golden bytes, validation, and
// the recognizer the data path runs on every decapsulated frame while BFD is on.
import t from 'tap';
import {
  BFD_FRAME_LEN,
  BfdState,
  bfdFrame,
  bfdOffset,
  emitBfd,
  parseBfd,
  type BfdPacket,
} from '../../src/wire/bfd.js';
import { checksum } from '../../src/wire/checksum.js';

const p: BfdPacket = {
  diag: 0,
  state: BfdState.DOWN,
  poll: false,
  final: false,
  multiplier: 3,
  myDisc: 0x11223344,
  yourDisc: 0,
  desiredMinTx: 1_000_000,
  requiredMinRx: 100_000,
};

t.test('golden bytes of a control packet and its frame', async (t) => {
  const b = Buffer.alloc(24);
  emitBfd(p, b, 0);
  t.equal(
    b.toString('hex'),
    '20' + '40' + '03' + '18' + '11223344' + '00000000' + '000f4240' + '000186a0' + '00000000',
  );
  const f = bfdFrame({ ...p, state: BfdState.UP, poll: true, yourDisc: 7 }, 0x025202000001);
  t.equal(f.length, BFD_FRAME_LEN);
  t.equal(f.subarray(0, 14).toString('hex'), '005202000000' + '025202000001' + '0800');
  t.equal(f[22], 255, 'TTL 255');
  t.equal(f.readUInt32BE(30), 0x7f000001, 'to 127.0.0.1');
  t.equal(checksum(f, 14, 20), 0, 'a valid IPv4 checksum');
  t.same([f.readUInt16BE(34), f.readUInt16BE(36)], [49152, 3784]);
  t.equal(f[43], 0xe0, 'state up, poll');
  t.equal(bfdOffset(f, 0, f.length), 42);
  t.same(parseBfd(f, 42, 24), { ...p, state: BfdState.UP, poll: true, yourDisc: 7 });
});

t.test('what RFC 5880 §6.8.6 discards, and frames that are not BFD', async (t) => {
  const good = Buffer.alloc(24);
  emitBfd(p, good, 0);
  const bad = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(good);
    edit(b);
    return parseBfd(b, 0, 24);
  };
  t.equal(parseBfd(good, 0, 20), 'short');
  t.equal(
    bad((b) => (b[0] = 0x40)),
    'version',
  );
  t.equal(
    bad((b) => (b[3] = 30)),
    'length',
  );
  t.equal(
    bad((b) => (b[1] |= 0x04)),
    'authentication',
  );
  t.equal(
    bad((b) => (b[1] |= 0x01)),
    'multipoint',
  );
  t.equal(
    bad((b) => (b[2] = 0)),
    'multiplier',
  );
  t.equal(
    bad((b) => b.writeUInt32BE(0, 4)),
    'discriminator',
  );
  t.equal(
    bad((b) => (b[1] = 0xc0)),
    'your-discriminator',
    'up without your discriminator',
  );
  const f = bfdFrame(p, 2);
  const not = (edit: (b: Buffer) => void) => {
    const b = Buffer.from(f);
    edit(b);
    return bfdOffset(b, 0, b.length);
  };
  t.equal(
    not((b) => (b[0] = 0x52)),
    -1,
    'another MAC',
  );
  t.equal(
    not((b) => (b[5] = 1)),
    -1,
  );
  t.equal(
    not((b) => (b[13] = 0xdd)),
    -1,
    'not IPv4',
  );
  t.equal(
    not((b) => (b[14] = 0x65)),
    -1,
    'not version 4',
  );
  t.equal(
    not((b) => (b[22] = 64)),
    -1,
    'TTL not 255',
  );
  t.equal(
    not((b) => (b[23] = 6)),
    -1,
    'not UDP',
  );
  t.equal(
    not((b) => b.writeUInt16BE(3785, 36)),
    -1,
    'not port 3784',
  );
  t.equal(bfdOffset(f, 0, 60), -1, 'too short for a control packet');
  t.equal(
    not((b) => (b[14] = 0x46)),
    -1,
    'options leave no room for the packet',
  );
});
