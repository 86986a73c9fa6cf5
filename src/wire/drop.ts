/**
 * Why a packet was dropped. One numbering for the whole data path (like the kernel's
 * skb drop reasons), so that the engine can count drops in one flat Float64Array indexed by
 * reason, and parsers can return a reason instead of throwing.
 */
export const Drop = {
  /** Not a drop: the packet parsed. */
  NONE: 0,
  /** Datagram shorter than the 8-byte VXLAN header. */
  VXLAN_TRUNCATED: 1,
  /** The I flag (0x08) is not set: the VNI is not valid (RFC 7348 §5). */
  VXLAN_NO_I_FLAG: 2,
  /** One of the 7 reserved flag bits is set (policy `drop`). */
  VXLAN_RESERVED_FLAGS: 3,
  /** One of the 24 reserved bits after the flags or the 8 after the VNI is set (policy `drop`). */
  VXLAN_RESERVED_FIELD: 4,
  /** The inner frame is shorter than an Ethernet header (14 bytes). */
  INNER_TRUNCATED: 5,
  /** Ethernet frame shorter than its header (or its 802.1Q tag). */
  ETHERNET_TRUNCATED: 6,
  /** IPv4 header malformed: short, wrong version, bad IHL or total length. */
  IPV4_MALFORMED: 7,
  /** IPv6 header malformed: short, wrong version or payload length. */
  IPV6_MALFORMED: 8,
  /** UDP header malformed: short or bad length field. */
  UDP_MALFORMED: 9,
  /** The VNI is not configured on this endpoint. */
  VNI_UNKNOWN: 10,
  /** The sender is not a configured remote of the VNI (and remote learning is off). */
  SENDER_NOT_REMOTE: 11,
  /** The inner source MAC is one of our own (a loop). */
  OWN_SOURCE_MAC: 12,
  /** No remote to send to (empty flood list, or destination behind the sender). */
  NO_REMOTE: 13,
  /** The inner frame is larger than the TAP/underlay MTU allows. */
  FRAME_TOO_BIG: 14,
  /** The underlay refused the datagram (socket queue full, no route, too big, …). */
  UNDERLAY_SEND_FAILED: 15,
  /** The TAP refused the frame. */
  TAP_WRITE_FAILED: 16,
  /** The datagram was larger than a receive slot and arrived cut. */
  DATAGRAM_TRUNCATED: 17,
  /** The inner source MAC is zero or a group address (policy `drop`, as Linux vxlan does). */
  INVALID_SOURCE_MAC: 18,
  /** The VNI's TAP is gone (deleted under us) and not re-created yet. */
  TAP_DOWN: 19,
  /** The underlay socket's send queue was full (non-blocking send: EAGAIN/ENOBUFS). */
  UNDERLAY_QUEUE_FULL: 20,
  /**
   * The frame fits the TAP MTU but not the underlay path once encapsulated; a VTEP must not
   * fragment (RFC 7348 §4.3), so it is dropped and the sender told (ICMP frag needed / PTB).
   */
  PATH_MTU_EXCEEDED: 21,
  /** A frame from a TAP whose OVSDB port is not bound to a logical switch yet (no VNI). */
  PORT_UNBOUND: 22,
  /**
   * A TAP frame whose offload request (virtio-net header) cannot be carried out: a GSO type we
   * did not negotiate, checksum offsets outside the frame, a super-frame that is not TCP over IP.
   */
  OFFLOAD_INVALID: 23,
  /**
   * The underlay marked congestion (outer ECN CE) on a packet whose transport is not
   * ECN-capable (inner Not-ECT): it cannot be told, so the packet is dropped instead (RFC 6040
   * §4.2; Linux counts it as a frame error).
   */
  ECN_CE_NOT_ECT: 24,
} as const;

export type DropReason = (typeof Drop)[keyof typeof Drop];

/** Number of reasons, for sizing counter arrays. */
export const DROP_REASON_COUNT = 25;

/**
 * The reasons the engine counts (and `vtep stats` lists). The IPv4, IPv6 and UDP header reasons
 * are results of the wire parsers only: the engine never parses those headers of a datagram it
 * receives (the kernel's UDP socket did), so listing them would show counters that cannot move.
 */
export const ENGINE_DROP_REASONS: readonly number[] = Object.values(Drop).filter(
  (r) =>
    r !== Drop.NONE &&
    r !== Drop.IPV4_MALFORMED &&
    r !== Drop.IPV6_MALFORMED &&
    r !== Drop.UDP_MALFORMED,
);

const names: string[] = [];
for (const [name, value] of Object.entries(Drop)) names[value] = name.toLowerCase();

/** The snake_case name of a reason, as printed by `vtep stats`. */
export function dropReasonName(reason: number): string {
  return names[reason] ?? `unknown_${reason}`;
}
