// EVPN routes in GoBGP's API form, both ways, against paths gobgpd itself produced (golden.ts).
import { join } from 'node:path';
import t from 'tap';
import { AnyCodec, DEFAULT_PROTO_DIR } from '../../src/evpn/gobgp.js';
import {
  RtImport,
  autoRd,
  autoRt,
  decodePath,
  imetPath,
  macPath,
  routeKey,
  type EvpnRoute,
} from '../../src/evpn/routes.js';
import { needs } from '../helpers/prereq.js';
import { IMET_NLRI, IMET_PATH, MAC_NLRI, MAC_PATH } from './golden.js';

/** GoBGP's .proto files (golang-github-osrg-gobgp-dev): a test that needs them says so. */
const PROTOS = [join(DEFAULT_PROTO_DIR, 'gobgp.proto')];
let loaded: AnyCodec | undefined;
const codecFor = (t: Parameters<typeof needs>[0]) =>
  needs(t, { files: PROTOS }) ? (loaded ??= AnyCodec.load()) : undefined;
const fromPeer = <T extends object>(p: T) => ({ ...p, neighbor_ip: '192.0.2.3' });

t.test('decoded: the routes gobgpd builds', async (t) => {
  const codec = codecFor(t);
  if (!codec) return;
  t.same(decodePath(codec, fromPeer(IMET_PATH)), {
    type: 3,
    rd: '10.77.0.2:100',
    etag: 0,
    rts: ['65000:100'],
    from: '192.0.2.3',
    nexthop: '',
    origin: '10.77.0.2',
    pmsi: { type: 6, label: 100 },
  });
  // gobgpd's own route has next hop 0.0.0.0: a type-2 needs a real one.
  t.same(decodePath(codec, MAC_PATH), { skip: 'type-2 without a next hop' });
  const withHop = {
    ...fromPeer(MAC_PATH),
    pattrs: [...MAC_PATH.pattrs, codec.pack('NextHopAttribute', { next_hop: '192.0.2.3' })],
  };
  t.same(decodePath(codec, withHop), {
    type: 2,
    rd: '10.77.0.2:100',
    etag: 0,
    rts: ['65000:100'],
    from: '192.0.2.3',
    nexthop: '192.0.2.3',
    mac: 0xaabbcc000001,
    ip: '10.0.0.5',
    label: 100,
    seq: 0,
    sticky: false,
  });
});

t.test('encoded: our NLRI is byte for byte what gobgpd builds', async (t) => {
  const codec = codecFor(t);
  if (!codec) return;
  const o = { rd: '10.77.0.2:100', rt: ['65000:100'], vni: 100, vtep: '10.77.0.2' };
  const imet = imetPath(codec, o);
  t.equal(Buffer.from(imet.nlri.value).toString('hex'), IMET_NLRI, 'type 3');
  const mac = macPath(codec, { ...o, mac: 0xaabbcc000001, ip: '10.0.0.5', seq: 0, sticky: false });
  t.equal(Buffer.from(mac.nlri.value).toString('hex'), MAC_NLRI, 'type 2');
  t.same(
    imet.pattrs.map((a) => a.type_url.split('.').pop()),
    ['OriginAttribute', 'NextHopAttribute', 'ExtendedCommunitiesAttribute', 'PmsiTunnelAttribute'],
  );
  // And back: what we send is what a peer would decode.
  t.match(decodePath(codec, fromPeer(imet)), {
    type: 3,
    origin: '10.77.0.2',
    rts: ['65000:100'],
    pmsi: { type: 6, label: 100 },
  });
  const moved = macPath(codec, { ...o, mac: 0x020000000001, seq: 7, sticky: true });
  t.match(decodePath(codec, fromPeer(moved)), {
    type: 2,
    ip: '',
    nexthop: '10.77.0.2',
    seq: 7,
    sticky: true,
    label: 100,
  });
  const pmsi = codec.unpack(imet.pattrs[3]!)!.value as { id: Buffer };
  t.equal(pmsi.id.toString('hex'), '0a4d0002', 'PMSI tunnel id: our address');
  const six = imetPath(codec, { ...o, vtep: '2001:db8::2' });
  t.equal(
    (codec.unpack(six.pattrs[3]!)!.value as { id: Buffer }).id.toString('hex'),
    '20010db8000000000000000000000002',
  );
});

t.test('route distinguishers and targets of every kind', async (t) => {
  const codec = codecFor(t);
  if (!codec) return;
  const o = { vni: 5000, vtep: '192.0.2.2' };
  for (const [rd, rt] of [
    ['65000:5000', '65000:5000'],
    ['4200000000:7', '4200000000:7'],
    ['192.0.2.2:9', '192.0.2.2:9'],
  ] as const) {
    const r = decodePath(codec, fromPeer(imetPath(codec, { ...o, rd, rt: [rt] })));
    t.match(r, { rd, rts: [rt] }, `${rd} / ${rt}`);
  }
  t.equal(autoRd('192.0.2.2', 100), '192.0.2.2:100');
  t.equal(autoRt(65000, 100), '65000:100');
});

t.test('what is not taken comes back as a reason, never a throw', async (t) => {
  const codec = codecFor(t);
  if (!codec) return;
  const base = fromPeer(IMET_PATH);
  t.match(
    decodePath(codec, { ...base, nlri: { type_url: 'x/apipb.Nope', value: Buffer.alloc(0) } }),
    {
      skip: /unknown NLRI type/,
    },
  );
  t.match(decodePath(codec, { ...base, nlri: codec.pack('EVPNEthernetSegmentRoute', {}) }), {
    skip: /not a type-2 or type-3 route/,
  });
  t.match(
    decodePath(codec, { ...base, nlri: codec.pack('EVPNInclusiveMulticastEthernetTagRoute', {}) }),
    { skip: 'no route distinguisher' },
  );
  const rd = codec.pack('RouteDistinguisherIPAddress', { admin: '192.0.2.3', assigned: 1 });
  t.match(
    decodePath(codec, {
      ...base,
      nlri: codec.pack('EVPNInclusiveMulticastEthernetTagRoute', { rd, ip_address: '<nil>' }),
    }),
    { skip: /originating router/ },
  );
  t.match(
    decodePath(codec, {
      ...base,
      nlri: codec.pack('EVPNMACIPAdvertisementRoute', { rd, mac_address: 'zz' }),
    }),
    { skip: /type-2 MAC/ },
  );
  t.match(
    decodePath(codec, {
      ...base,
      nlri: codec.pack('EVPNMACIPAdvertisementRoute', { rd, mac_address: '02:00:00:00:00:01' }),
    }),
    { skip: 'type-2 without a label' },
  );
  t.match(
    decodePath(codec, {
      ...base,
      nlri: { type_url: IMET_PATH.nlri.type_url, value: Buffer.from('ffffffff', 'hex') },
    }),
    { skip: /malformed/ },
  );
  // Attributes of types the files lack, and communities that are not targets, are passed over.
  const odd = {
    ...base,
    pattrs: [
      { type_url: 'x/apipb.Nope', value: Buffer.alloc(0) },
      codec.pack('ExtendedCommunitiesAttribute', {
        communities: [
          { type_url: 'x/apipb.Nope', value: Buffer.alloc(0) },
          codec.pack('TwoOctetAsSpecificExtended', {
            is_transitive: true,
            sub_type: 3,
            asn: 1,
            local_admin: 2,
          }),
          codec.pack('IPv4AddressSpecificExtended', {
            is_transitive: true,
            sub_type: 2,
            address: '192.0.2.1',
            local_admin: 5,
          }),
        ],
      }),
    ],
  };
  t.match(decodePath(codec, odd), { type: 3, rts: ['192.0.2.1:5'] });
  t.throws(() => codec.pack('NextHopAttribute', { next_hop: 5 }), /apipb.NextHopAttribute/);
});

t.test('route-target import, as FRR does it', async (t) => {
  const i = new RtImport();
  i.add(100, '*:100');
  i.add(200, '65000:7');
  t.equal(i.vniOf(['65001:100']), 100, 'an automatic target matches any AS');
  t.equal(i.vniOf(['65000:7']), 200, 'an explicit one exactly');
  t.equal(i.vniOf(['65001:7']), undefined, 'and only exactly');
  t.equal(i.vniOf(['192.0.2.1:100']), undefined, 'an address-specific target is not AS:VNI');
  t.equal(i.vniOf([]), undefined, 'no target: not imported');
  t.equal(i.vniOf(['1:100', '65000:7']), 200, 'explicit targets first');
});

t.test('route keys: one per NLRI and peer', async (t) => {
  const r2: EvpnRoute = {
    type: 2,
    rd: '1:1',
    etag: 0,
    rts: [],
    from: 'a',
    nexthop: 'a',
    mac: 1,
    ip: '',
    label: 1,
    seq: 0,
    sticky: false,
  };
  t.equal(routeKey(r2), '2|1:1|0|1||a');
  t.equal(routeKey({ ...r2, seq: 4 }), routeKey(r2), 'a new sequence number is the same route');
  t.not(routeKey({ ...r2, from: 'b' }), routeKey(r2));
  t.equal(
    routeKey({ type: 3, rd: '1:1', etag: 0, rts: [], from: 'a', nexthop: '', origin: 'o' }),
    '3|1:1|0|o|a',
  );
});
