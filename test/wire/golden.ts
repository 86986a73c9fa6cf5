import { hex } from '../helpers/hex.js';

/**
 * One VXLAN packet built by an independent encoder (scapy 2.5, Debian python3-scapy):
 *   Ether(02:00:00:00:00:01 > 02:00:00:00:00:02) / IP(192.0.2.1 > 192.0.2.2, DF, ttl 64, id 0)
 *   / UDP(50000 > 4789, checksum 0) / VXLAN(flags 0x08, vni 42)
 *   / Ether(52:54:00:00:00:01 > 52:54:00:00:00:02) / IP(10.0.0.1 > 10.0.0.2, id 1, DF)
 *   / ICMP echo-request id 1 seq 1 / "vtep"
 * Split by header so the tests can point at each part.
 */
export const golden = {
  outerEthernet: hex('020000000002 020000000001 0800'),
  outerIpv4: hex('4500 0052 0000 4000 4011 b697 c0000201 c0000202'),
  udpNoChecksum: hex('c350 12b5 003e 0000'),
  /** The same UDP header with its checksum computed over the IPv4 pseudo header. */
  udpChecksum: hex('c350 12b5 003e c6bc'),
  vxlan: hex('08 000000 00002a 00'),
  innerEthernet: hex('525400000002 525400000001 0800'),
  innerIpv4: hex('4500 0020 0001 4000 4001 26da 0a000001 0a000002'),
  innerIcmp: hex('0800 1c19 0001 0001 76746570'),
};

export const goldenInnerFrame = Buffer.concat([
  golden.innerEthernet,
  golden.innerIpv4,
  golden.innerIcmp,
]);

/** The whole 96-byte packet as it appears on the wire (UDP checksum zero). */
export const goldenPacket = Buffer.concat([
  golden.outerEthernet,
  golden.outerIpv4,
  golden.udpNoChecksum,
  golden.vxlan,
  goldenInnerFrame,
]);
