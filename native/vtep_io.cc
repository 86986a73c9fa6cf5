// vtep_io: the syscalls vtep needs and nothing else. TAP devices (/dev/net/tun), UDP and raw
// UDP sockets, batched reads driven by uv_poll, batched writes (writev per frame for TAP,
// sendmmsg for sockets). No protocol logic lives here: JavaScript owns every buffer and every
// header; this file moves bytes between those buffers and file descriptors.
//
// Conventions:
//  - Setup calls throw a JS Error with `code` (errno name), `errno` and `syscall`.
//  - Data-path calls never throw on I/O errors: they return a count, or -errno when nothing
//    was done, so the caller can count drops per reason.
//  - Functions are registered once, from the table at the bottom.

#include <napi.h>
#include <uv.h>

#include <algorithm>
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <linux/if.h>
#include <linux/if_link.h>
#include <linux/if_tun.h>
#include <linux/netlink.h>
#include <linux/pkt_sched.h>
#include <linux/rtnetlink.h>
#include <linux/sockios.h>
#include <linux/sock_diag.h>
#include <net/if_arp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#ifdef VTEP_URING
#include <liburing.h>
#endif

#ifndef UDP_NO_CHECK6_TX
#define UDP_NO_CHECK6_TX 101  // linux/udp.h
#endif
#ifndef UDP_NO_CHECK6_RX
#define UDP_NO_CHECK6_RX 102
#endif
#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103  // linux/udp.h: UDP GSO, one send of equal-sized datagrams
#endif
#ifndef UDP_GRO
#define UDP_GRO 104  // linux/udp.h: receive coalesced datagrams, gso_size in a control message
#endif
#ifndef IPV6_FLOWINFO_SEND
#define IPV6_FLOWINFO_SEND 33  // linux/in6.h: take the flow label of sin6_flowinfo on sends
#endif
#ifndef SOL_UDP
#define SOL_UDP 17
#endif
#ifndef IP_MULTICAST_ALL
#define IP_MULTICAST_ALL 49  // linux/in.h
#endif
#ifndef IPV6_MULTICAST_ALL
#define IPV6_MULTICAST_ALL 29  // linux/in6.h (4.20)
#endif

#include <array>
#include <string>
#include <unordered_map>
#include <vector>
#include <time.h>

namespace {

// Layout of one source/destination address slot shared with JavaScript (src/io/addr.ts):
// [0] family (4 or 6), [1] flags (bit 0: datagram truncated), [2..4) port (big endian),
// [4..20) address (IPv4 in the first 4 bytes).
constexpr size_t kAddrLen = 20;
constexpr uint8_t kAddrTruncated = 1;
// struct virtio_net_hdr_v1 (flags, gso_type, hdr_len, gso_size, csum_start, csum_offset,
// num_buffers): the per-frame metadata of a TAP opened with IFF_VNET_HDR.
constexpr int kVnetHdrLen = 12;
// Per-item outcome of sendBatch/writeBatch, in the status array JavaScript passes (src/io/types.ts).
constexpr uint8_t kTxSent = 1;
constexpr uint8_t kTxQueueFull = 2;  // EAGAIN/ENOBUFS: the socket or device queue is full
constexpr uint8_t kTxRefused = 3;    // anything else (EMSGSIZE, ENETUNREACH, …) about this item

const char* ErrnoName(int err) {
  const char* name = strerrorname_np(err);
  return name != nullptr ? name : "EUNKNOWN";
}

Napi::Error SysError(Napi::Env env, const char* syscall, int err, const std::string& what) {
  std::string message = what + ": " + syscall + " failed: " + ErrnoName(err) + " (" + strerror(err) + ")";
  if (err == EPERM || err == EACCES) {
    message += "; this needs CAP_NET_ADMIN (and CAP_NET_RAW for raw sockets): run as root";
  }
  Napi::Error e = Napi::Error::New(env, message);
  e.Set("code", Napi::String::New(env, ErrnoName(err)));
  e.Set("errno", Napi::Number::New(env, err));
  e.Set("syscall", Napi::String::New(env, syscall));
  return e;
}

#define THROW_SYS(env, syscall, err, what)                        \
  do {                                                            \
    SysError(env, syscall, err, what).ThrowAsJavaScriptException(); \
    return env.Undefined();                                       \
  } while (0)

#define THROW_TYPE(env, msg)                                  \
  do {                                                        \
    Napi::TypeError::New(env, msg).ThrowAsJavaScriptException(); \
    return env.Undefined();                                   \
  } while (0)

bool IfName(const Napi::Value& v, struct ifreq* ifr) {
  if (!v.IsString()) return false;
  std::string name = v.As<Napi::String>().Utf8Value();
  if (name.size() >= IFNAMSIZ) return false;
  memset(ifr, 0, sizeof(*ifr));
  memcpy(ifr->ifr_name, name.data(), name.size());
  return true;
}

// ---------------------------------------------------------------------------------------------
// TAP

// tapOpen(name, flags) -> [fd, actualName]. flags: bit 0 vnet header, bit 1 multi-queue.
Napi::Value TapOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifreq ifr;
  if (!IfName(info[0], &ifr)) THROW_TYPE(env, "tapOpen: name must be a string shorter than 16 bytes");
  uint32_t flags = info[1].As<Napi::Number>().Uint32Value();
  int fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
  if (fd < 0) THROW_SYS(env, "open", errno, "tap: cannot open /dev/net/tun");
  ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
  if (flags & 1) ifr.ifr_flags |= IFF_VNET_HDR;
  if (flags & 2) ifr.ifr_flags |= IFF_MULTI_QUEUE;
  if (ioctl(fd, TUNSETIFF, &ifr) < 0) {
    int err = errno;
    close(fd);
    std::string what = std::string("tap ") + (ifr.ifr_name[0] ? ifr.ifr_name : "(kernel-chosen name)");
    if (err == EINVAL || err == EBUSY) {
      what += ": the name is in use by a device that is not a TAP of ours (or has other flags)";
    }
    THROW_SYS(env, "ioctl(TUNSETIFF)", err, what);
  }
  if (flags & 1) {
    int hdrLen = kVnetHdrLen;
    if (ioctl(fd, TUNSETVNETHDRSZ, &hdrLen) < 0) {
      int err = errno;
      close(fd);
      THROW_SYS(env, "ioctl(TUNSETVNETHDRSZ)", err, std::string("tap ") + ifr.ifr_name);
    }
  }
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fd));
  out.Set(1u, Napi::String::New(env, ifr.ifr_name));
  return out;
}

// tapSetPersist(fd, on)
Napi::Value TapSetPersist(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long on = info[1].ToBoolean() ? 1 : 0;
  if (ioctl(fd, TUNSETPERSIST, on) < 0) THROW_SYS(env, "ioctl(TUNSETPERSIST)", errno, "tap");
  return env.Undefined();
}

// tapSetOffload(fd, tunOffloadFlags): TUN_F_CSUM, TUN_F_TSO4, ... (needs the vnet header).
Napi::Value TapSetOffload(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  unsigned long flags = info[1].As<Napi::Number>().Uint32Value();
  if (ioctl(fd, TUNSETOFFLOAD, flags) < 0) THROW_SYS(env, "ioctl(TUNSETOFFLOAD)", errno, "tap");
  return env.Undefined();
}

// Interface settings by name, through an AF_INET control socket in the caller's namespace.
int ControlSocket() { return socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0); }

// One interface ioctl on a control socket of its own; returns 0 or the errno.
int IfIoctl(unsigned long request, struct ifreq* ifr) {
  int s = ControlSocket();
  if (s < 0) return errno;
  int rc = ioctl(s, request, ifr);
  int err = rc < 0 ? errno : 0;
  close(s);
  return err;
}

// ifSetMtu(name, mtu)
Napi::Value IfSetMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifreq ifr;
  if (!IfName(info[0], &ifr)) THROW_TYPE(env, "ifSetMtu: bad interface name");
  ifr.ifr_mtu = info[1].As<Napi::Number>().Int32Value();
  int err = IfIoctl(SIOCSIFMTU, &ifr);
  if (err) THROW_SYS(env, "ioctl(SIOCSIFMTU)", err, std::string("set mtu of ") + ifr.ifr_name);
  return env.Undefined();
}

// ifSetMac(name, sixBytes)
Napi::Value IfSetMac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifreq ifr;
  if (!IfName(info[0], &ifr)) THROW_TYPE(env, "ifSetMac: bad interface name");
  if (!info[1].IsTypedArray() || info[1].As<Napi::Uint8Array>().ByteLength() != 6) {
    THROW_TYPE(env, "ifSetMac: mac must be 6 bytes");
  }
  ifr.ifr_hwaddr.sa_family = ARPHRD_ETHER;
  memcpy(ifr.ifr_hwaddr.sa_data, info[1].As<Napi::Uint8Array>().Data(), 6);
  int err = IfIoctl(SIOCSIFHWADDR, &ifr);
  if (err) THROW_SYS(env, "ioctl(SIOCSIFHWADDR)", err, std::string("set mac of ") + ifr.ifr_name);
  return env.Undefined();
}

// ifGetMac(name) -> Buffer(6)
Napi::Value IfGetMac(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifreq ifr;
  if (!IfName(info[0], &ifr)) THROW_TYPE(env, "ifGetMac: bad interface name");
  int err = IfIoctl(SIOCGIFHWADDR, &ifr);
  if (err) THROW_SYS(env, "ioctl(SIOCGIFHWADDR)", err, std::string("get mac of ") + ifr.ifr_name);
  return Napi::Buffer<uint8_t>::Copy(env, reinterpret_cast<uint8_t*>(ifr.ifr_hwaddr.sa_data), 6);
}

// Send one rtnetlink request and read its acknowledgement: 0 or -errno.
int NlAck(int fd, nlmsghdr* req) {
  req->nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  if (send(fd, req, req->nlmsg_len, 0) < 0) return -errno;
  alignas(nlmsghdr) char buf[8192];
  for (;;) {
    ssize_t got = recv(fd, buf, sizeof(buf), 0);
    if (got < 0 && errno == EINTR) continue;
    if (got < 0) return -errno;
    int len = static_cast<int>(got);
    for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, len); h = NLMSG_NEXT(h, len)) {
      if (h->nlmsg_seq == req->nlmsg_seq && h->nlmsg_type == NLMSG_ERROR) {
        return reinterpret_cast<nlmsgerr*>(NLMSG_DATA(h))->error;
      }
    }
  }
}

// An rtnetlink request: a header, a fixed part, and room for one attribute.
template <typename Fixed>
struct NlRequest {
  nlmsghdr nh;
  Fixed body;
  alignas(NLMSG_ALIGNTO) char attr[RTA_SPACE(16)];

  NlRequest(uint16_t type, uint16_t flags, uint32_t seq) : nh(), body(), attr() {
    nh.nlmsg_len = NLMSG_LENGTH(sizeof(Fixed));
    nh.nlmsg_type = type;
    nh.nlmsg_flags = flags;
    nh.nlmsg_seq = seq;
  }
  // Append attribute `type` (at most 16 bytes of data).
  void Put(uint16_t type, const void* data, size_t len) {
    auto* rta = reinterpret_cast<rtattr*>(attr);
    rta->rta_type = type;
    rta->rta_len = RTA_LENGTH(len);
    memcpy(RTA_DATA(rta), data, len);
    nh.nlmsg_len = NLMSG_LENGTH(sizeof(Fixed)) + RTA_SPACE(len);
  }
};

// RTM_NEWLINK / RTM_DELLINK for device `ifindex` (0: by group) with IFLA_GROUP `group`.
int LinkGroupRequest(int fd, uint16_t type, int ifindex, uint32_t group, uint32_t seq) {
  NlRequest<ifinfomsg> req(type, 0, seq);
  req.body.ifi_family = AF_UNSPEC;
  req.body.ifi_index = ifindex;
  req.Put(IFLA_GROUP, &group, sizeof(group));
  return NlAck(fd, &req.nh);
}

// linkGroupDelete(ifindexes, group) -> devices deleted, or -errno. Puts each device (by ifindex,
// in this namespace) into interface group `group`, which the caller chose unused, then deletes
// the group with one RTM_DELLINK: the kernel unregisters them as one batch, with one RCU grace
// period for all, where closing each TAP's last fd waits for one of its own (~16 ms: 1 000 TAPs
// took 22 s to stop). A device that is gone already is skipped.
Napi::Value LinkGroupDelete(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto indexes = info[0].As<Napi::Int32Array>();
  uint32_t group = info[1].As<Napi::Number>().Uint32Value();
  if (group == 0) THROW_TYPE(env, "linkGroupDelete: group 0 is every device's default");
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Napi::Number::New(env, -errno);
  uint32_t seq = 1;
  int grouped = 0;
  int err = 0;
  for (size_t i = 0; i < indexes.ElementLength(); i++) {
    int rc = LinkGroupRequest(fd, RTM_NEWLINK, indexes[i], group, seq++);
    if (rc == 0) {
      grouped++;
    } else if (rc != -ENODEV) {
      err = rc;
    }
  }
  int rc = grouped > 0 ? LinkGroupRequest(fd, RTM_DELLINK, 0, group, seq++) : 0;
  close(fd);
  if (rc < 0) return Napi::Number::New(env, rc);
  if (grouped == 0 && err < 0) return Napi::Number::New(env, err);
  return Napi::Number::New(env, grouped);
}

// qdiscRoot(ifindex, kind) -> 0 or -errno: the device's root qdisc becomes one `kind`
// (pfifo_fast), for a multi-queue TAP before it first comes up. Up, it would get `mq` with a
// default qdisc under it for each of the 256 queues a TAP may have: ~9 ms per device here, and
// with two threads 300 VNIs took 1.6-1.9 GiB of available memory (124-154 MiB with one qdisc).
// A TAP never pushes back (tun drops what its ring cannot take), so nothing waits in the qdisc
// either way: one passes frames as 256 do, and senders see the same (their frames accepted, tun
// counting its drops). noqueue would not: the driver's drop would reach each sender as ENOBUFS.
Napi::Value QdiscRoot(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int ifindex = info[0].As<Napi::Number>().Int32Value();
  std::string kind = info[1].As<Napi::String>().Utf8Value();
  if (kind.empty() || kind.size() > 15) THROW_TYPE(env, "qdiscRoot: bad kind " + kind);
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return Napi::Number::New(env, -errno);
  NlRequest<tcmsg> req(RTM_NEWQDISC, NLM_F_CREATE | NLM_F_REPLACE, 1);
  req.body.tcm_family = AF_UNSPEC;
  req.body.tcm_ifindex = ifindex;
  req.body.tcm_parent = TC_H_ROOT;
  req.Put(TCA_KIND, kind.c_str(), kind.size() + 1);
  int rc = NlAck(fd, &req.nh);
  close(fd);
  return Napi::Number::New(env, rc);
}

// ifSetUp(name, up)
Napi::Value IfSetUp(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  struct ifreq ifr;
  if (!IfName(info[0], &ifr)) THROW_TYPE(env, "ifSetUp: bad interface name");
  bool up = info[1].ToBoolean();
  int err = IfIoctl(SIOCGIFFLAGS, &ifr);
  if (!err) {
    if (up) ifr.ifr_flags |= IFF_UP;
    else ifr.ifr_flags &= ~IFF_UP;
    err = IfIoctl(SIOCSIFFLAGS, &ifr);
  }
  if (err) THROW_SYS(env, "ioctl(SIOCSIFFLAGS)", err, std::string("set up/down of ") + ifr.ifr_name);
  return env.Undefined();
}

// ---------------------------------------------------------------------------------------------
// Sockets

bool ParseAddress(int family, const std::string& text, uint16_t port, sockaddr_storage* ss, socklen_t* len) {
  memset(ss, 0, sizeof(*ss));
  if (family == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    *len = sizeof(*sin);
    return inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1;
  }
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
  sin6->sin6_family = AF_INET6;
  sin6->sin6_port = htons(port);
  *len = sizeof(*sin6);
  return inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1;
}

// RFC 7348 §4.3: VTEPs MUST NOT fragment VXLAN packets. With IP_PMTUDISC_DO the kernel sets DF
// and refuses (EMSGSIZE) a datagram larger than the path MTU instead of fragmenting it; for IPv6
// IPV6_DONTFRAG does the same for the local MTU. The engine checks sizes first and answers the
// inner host with ICMP; this is the guarantee underneath.
bool DontFragment(int fd, int family) {
  if (family == 4) {
    int mode = IP_PMTUDISC_DO;
    return setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof(mode)) == 0;
  }
  int mode = IPV6_PMTUDISC_DO;
  int one = 1;
  return setsockopt(fd, IPPROTO_IPV6, IPV6_MTU_DISCOVER, &mode, sizeof(mode)) == 0 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_DONTFRAG, &one, sizeof(one)) == 0;
}

// Multicast as Linux VXLAN keeps it on its sockets: our own group sends are not looped back to
// us (we would learn our VMs' MACs behind our own address), and a socket receives only the
// groups it joined itself, not every group any socket on the host joined (IP_MULTICAST_ALL is
// on by default: a wildcard-bound underlay socket, or each of several SO_REUSEPORT ones, would
// get a copy of each group datagram). Best effort: an old kernel without these keeps its default.
void MulticastDefaults(int fd, int family) {
  int zero = 0;
  if (family == 4) {
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_LOOP, &zero, sizeof(zero));
    setsockopt(fd, IPPROTO_IP, IP_MULTICAST_ALL, &zero, sizeof(zero));
  } else {
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_LOOP, &zero, sizeof(zero));
    setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_ALL, &zero, sizeof(zero));
  }
}

// udpOpen(family, address, port, rcvbuf, sndbuf, flags) -> [fd, boundPort]. Non-blocking both
// ways. flags (IPv6 only, RFC 6935/6936 tunnels): bit 0 sends a zero UDP checksum
// (UDP_NO_CHECK6_TX, the kernel's udp6zerocsumtx), bit 1 accepts one (UDP_NO_CHECK6_RX);
// bit 2 (any family): send-only, a drop-all filter keeps anything from queueing on it.
// bit 3: SO_REUSEPORT, so that each worker binds its own socket to the port and the kernel
// spreads flows (by their 4-tuple hash) over them. bit 4: UDP_GRO, best effort (a kernel
// without it delivers datagrams one by one, as it would anyway).
Napi::Value UdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].As<Napi::Number>().Int32Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  uint16_t port = static_cast<uint16_t>(info[2].As<Napi::Number>().Uint32Value());
  int rcvbuf = info[3].As<Napi::Number>().Int32Value();
  int sndbuf = info[4].As<Napi::Number>().Int32Value();
  uint32_t flags = info[5].IsNumber() ? info[5].As<Napi::Number>().Uint32Value() : 0;
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddress(family, address, port, &ss, &len)) THROW_TYPE(env, "udpOpen: bad address " + address);
  // Non-blocking: a full send buffer must cost a counted drop, never stall the only thread
  // (receive, control and ageing run on it too).
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) THROW_SYS(env, "socket", errno, "udp " + address);
  if (family == 6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one));
    // per-datagram flow labels from sin6_flowinfo (0 there: the kernel's automatic label)
    setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWINFO_SEND, &one, sizeof(one));
  }
  if (!(flags & 4)) {
    // the outer TOS / traffic class of each datagram received, for ECN decapsulation (RFC 6040)
    int one = 1;
    if (family == 4) setsockopt(fd, IPPROTO_IP, IP_RECVTOS, &one, sizeof(one));
    else setsockopt(fd, IPPROTO_IPV6, IPV6_RECVTCLASS, &one, sizeof(one));
  }
  if (!DontFragment(fd, family)) {
    int err = errno;
    close(fd);
    THROW_SYS(env, "setsockopt(IP_MTU_DISCOVER)", err, "udp " + address);
  }
  MulticastDefaults(fd, family);
  for (int bit = 0; bit < 2 && family == 6; bit++) {
    int one = 1;
    int opt = bit == 0 ? UDP_NO_CHECK6_TX : UDP_NO_CHECK6_RX;
    if ((flags & (1u << bit)) && setsockopt(fd, IPPROTO_UDP, opt, &one, sizeof(one)) < 0) {
      int err = errno;
      close(fd);
      THROW_SYS(env, bit == 0 ? "setsockopt(UDP_NO_CHECK6_TX)" : "setsockopt(UDP_NO_CHECK6_RX)", err, "udp " + address);
    }
  }
  if (flags & 16) {
    int one = 1;
    setsockopt(fd, SOL_UDP, UDP_GRO, &one, sizeof(one));
  }
  if (flags & 8) {
    int one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) < 0) {
      int err = errno;
      close(fd);
      THROW_SYS(env, "setsockopt(SO_REUSEPORT)", err, "udp " + address);
    }
  }
  if (flags & 4) {
    struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
    struct sock_fprog prog = {1, drop_all};
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
      int err = errno;
      close(fd);
      THROW_SYS(env, "setsockopt(SO_ATTACH_FILTER)", err, "udp " + address);
    }
  }
  // Best effort: the kernel caps these at net.core.[rw]mem_max; SO_*BUFFORCE needs CAP_NET_ADMIN.
  if (rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &rcvbuf, sizeof(rcvbuf)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
  }
  if (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUFFORCE, &sndbuf, sizeof(sndbuf)) < 0) {
    setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof(sndbuf));
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    int err = errno;
    close(fd);
    THROW_SYS(env, "bind", err, "udp " + (family == 6 ? "[" + address + "]" : address) + ":" + std::to_string(port));
  }
  sockaddr_storage bound;
  socklen_t blen = sizeof(bound);
  getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &blen);
  uint16_t boundPort = family == 4 ? ntohs(reinterpret_cast<sockaddr_in*>(&bound)->sin_port)
                                   : ntohs(reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port);
  Napi::Array out = Napi::Array::New(env, 2);
  out.Set(0u, Napi::Number::New(env, fd));
  out.Set(1u, Napi::Number::New(env, boundPort));
  return out;
}

// rawUdpOpen(family, localAddress, zeroChecksum6) -> fd. A send-only raw socket for IPPROTO_UDP: JavaScript
// writes the UDP header (so it picks the source port per datagram, RFC 7348 §5); the kernel
// adds the IP header. A drop-all BPF filter keeps the kernel from queueing copies of every
// received UDP packet on it. For IPv6 the kernel fills in the mandatory UDP checksum.
Napi::Value RawUdpOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int family = info[0].As<Napi::Number>().Int32Value();
  std::string address = info[1].As<Napi::String>().Utf8Value();
  bool zeroChecksum6 = info[2].ToBoolean();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddress(family, address, 0, &ss, &len)) THROW_TYPE(env, "rawUdpOpen: bad address " + address);
  int fd = socket(family == 4 ? AF_INET : AF_INET6, SOCK_RAW | SOCK_CLOEXEC | SOCK_NONBLOCK, IPPROTO_UDP);
  if (fd < 0) THROW_SYS(env, "socket(SOCK_RAW)", errno, "raw udp " + address);
  struct sock_filter drop_all[] = {BPF_STMT(BPF_RET | BPF_K, 0)};
  struct sock_fprog prog = {1, drop_all};
  if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, &prog, sizeof(prog)) < 0) {
    int err = errno;
    close(fd);
    THROW_SYS(env, "setsockopt(SO_ATTACH_FILTER)", err, "raw udp");
  }
  if (!DontFragment(fd, family)) {
    int err = errno;
    close(fd);
    THROW_SYS(env, "setsockopt(IP_MTU_DISCOVER)", err, "raw udp");
  }
  MulticastDefaults(fd, family);
  if (family == 6) {
    int one = 1;
    setsockopt(fd, IPPROTO_IPV6, IPV6_FLOWINFO_SEND, &one, sizeof(one));
  }
  if (family == 6 && !zeroChecksum6) {  // with zeroChecksum6 the header's 0 stays (RFC 6935)
    int offset = 6;  // offset of the checksum in the UDP header
    if (setsockopt(fd, IPPROTO_IPV6, IPV6_CHECKSUM, &offset, sizeof(offset)) < 0) {
      int err = errno;
      close(fd);
      THROW_SYS(env, "setsockopt(IPV6_CHECKSUM)", err, "raw udp");
    }
  }
  if (bind(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) {
    int err = errno;
    close(fd);
    THROW_SYS(env, "bind", err, "raw udp " + address);
  }
  return Napi::Number::New(env, fd);
}

// rawUdpConnectSelf(fd, family, localAddress): connect a raw IPPROTO_UDP socket to its own bound
// address. The kernel hands an unconnected raw socket a clone of every UDP datagram addressed to
// it (raw_v4_input / ipv6_raw_deliver), which the drop-all filter then frees: a clone, a filter
// run and a drop (skb:kfree_skb, SOCKET_FILTER) per datagram the host receives. Connected, it
// matches only datagrams from itself. Sends name their destination, so they are unchanged; ICMP
// errors about them are matched by the inner destination too, so the caller does this only when
// UDP sockets own the source ports it sends from (their errors go there). Throws (a setup call).
Napi::Value RawUdpConnectSelf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int family = info[1].As<Napi::Number>().Int32Value();
  std::string address = info[2].As<Napi::String>().Utf8Value();
  sockaddr_storage ss;
  socklen_t len;
  if (!ParseAddress(family, address, 0, &ss, &len)) THROW_TYPE(env, "rawUdpConnectSelf: bad address " + address);
  if (connect(fd, reinterpret_cast<sockaddr*>(&ss), len) < 0) THROW_SYS(env, "connect", errno, "raw udp " + address);
  return env.Undefined();
}

// Fill a sockaddr from an address slot. Returns its length, or 0 for an unknown family.
socklen_t SlotToSockaddr(const uint8_t* slot, sockaddr_storage* ss, bool raw, uint32_t label = 0) {
  uint16_t port = static_cast<uint16_t>((slot[2] << 8) | slot[3]);
  // Raw IPPROTO_UDP sockets take the protocol in the port field's place; it must be 0 or 17.
  if (raw) port = 0;
  if (slot[0] == 4) {
    auto* sin = reinterpret_cast<sockaddr_in*>(ss);
    sin->sin_family = AF_INET;
    sin->sin_port = htons(port);
    memcpy(&sin->sin_addr, slot + 4, 4);
    return sizeof(*sin);
  }
  if (slot[0] == 6) {
    auto* sin6 = reinterpret_cast<sockaddr_in6*>(ss);
    memset(sin6, 0, sizeof(*sin6));
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    // the flow label, sent with IPV6_FLOWINFO_SEND on (0: the kernel's automatic one)
    sin6->sin6_flowinfo = htonl(label & 0xfffff);
    memcpy(&sin6->sin6_addr, slot + 4, 16);
    return sizeof(*sin6);
  }
  return 0;
}

void SockaddrToSlot(const sockaddr_storage* ss, uint8_t* slot) {
  if (ss->ss_family == AF_INET) {
    auto* sin = reinterpret_cast<const sockaddr_in*>(ss);
    slot[0] = 4;
    memcpy(slot + 2, &sin->sin_port, 2);
    memcpy(slot + 4, &sin->sin_addr, 4);
    memset(slot + 8, 0, 12);
  } else {
    auto* sin6 = reinterpret_cast<const sockaddr_in6*>(ss);
    slot[0] = 6;
    memcpy(slot + 2, &sin6->sin6_port, 2);
    memcpy(slot + 4, &sin6->sin6_addr, 16);
  }
}

// The one's complement sum of len bytes (16-bit big-endian words from p, a last odd byte as a
// high byte), folded to 16 bits. Native-order 32-bit words summed into 64 bits; byte order is
// fixed up once at the end (RFC 1071 §2(B)). Four accumulators, 32 bytes a step, so the adds do
// not wait on each other (half the time of one accumulator for a 1448-byte payload).
uint32_t OnesSum(const uint8_t* p, uint32_t len) {
  uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0;
  uint32_t i = 0;
  for (; i + 32 <= len; i += 32) {
    uint64_t w[4];
    memcpy(w, p + i, 32);
    a0 += (w[0] & 0xffffffffu) + (w[0] >> 32);
    a1 += (w[1] & 0xffffffffu) + (w[1] >> 32);
    a2 += (w[2] & 0xffffffffu) + (w[2] >> 32);
    a3 += (w[3] & 0xffffffffu) + (w[3] >> 32);
  }
  uint64_t acc = a0 + a1 + a2 + a3;
  for (; i + 4 <= len; i += 4) {
    uint32_t w;
    memcpy(&w, p + i, 4);
    acc += w;
  }
  while (acc >> 32) acc = (acc & 0xffffffffu) + (acc >> 32);
  uint32_t s = static_cast<uint32_t>(acc);
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  // little-endian host: words were read byte-swapped
  uint16_t probe = 1;
  bool little = *reinterpret_cast<uint8_t*>(&probe) == 1;
  if (little) s = ((s & 0xff) << 8) | (s >> 8);
  for (; i < len; i++) s += (i & 1) ? p[i] : static_cast<uint32_t>(p[i]) << 8;
  while (s > 0xffff) s = (s & 0xffff) + (s >> 16);
  return s;
}

// Outer-header words (src/io/types.ts OuterFlag), two per datagram: word 0 is
// tos | ttl << 8 | flags, word 1 the IPv6 flow label. 0 leaves the socket's default.
constexpr uint32_t kOuterNoDf = 1u << 16;    // IPv4: without DF (IP_PMTUDISC_DONT around it)
constexpr uint32_t kOuterNoCsum = 1u << 17;  // IPv4: a zero UDP checksum (SO_NO_CHECK around it)
constexpr uint32_t kOuterModes = kOuterNoDf | kOuterNoCsum;

// Control messages of one datagram: UDP_SEGMENT, TOS / traffic class, TTL / hop limit.
struct Control {
  alignas(cmsghdr) char buf[CMSG_SPACE(sizeof(uint16_t)) + 2 * CMSG_SPACE(sizeof(int))];
};
// Set the control messages a message needs (none: no control buffer at all): UDP GSO of
// `gsoSize`-byte segments when not 0, and the word's TOS and TTL when not 0.
void SetControl(msghdr* m, Control* c, int family, uint16_t gsoSize, uint32_t word) {
  int tos = static_cast<int>(word & 0xff);
  int ttl = static_cast<int>((word >> 8) & 0xff);
  if (gsoSize == 0 && tos == 0 && ttl == 0) {
    m->msg_control = nullptr;
    m->msg_controllen = 0;
    return;
  }
  memset(c->buf, 0, sizeof(c->buf));
  m->msg_control = c->buf;
  m->msg_controllen = sizeof(c->buf);
  size_t used = 0;
  cmsghdr* h = CMSG_FIRSTHDR(m);
  auto add = [&](int level, int type, const void* data, size_t n) {
    h->cmsg_level = level;
    h->cmsg_type = type;
    h->cmsg_len = CMSG_LEN(n);
    memcpy(CMSG_DATA(h), data, n);
    used += CMSG_SPACE(n);
    h = reinterpret_cast<cmsghdr*>(reinterpret_cast<char*>(h) + CMSG_SPACE(n));
  };
  if (gsoSize != 0) add(SOL_UDP, UDP_SEGMENT, &gsoSize, sizeof(gsoSize));
  if (tos != 0) add(family == 4 ? IPPROTO_IP : IPPROTO_IPV6, family == 4 ? IP_TOS : IPV6_TCLASS, &tos, sizeof(tos));
  if (ttl != 0) add(family == 4 ? IPPROTO_IP : IPPROTO_IPV6, family == 4 ? IP_TTL : IPV6_HOPLIMIT, &ttl, sizeof(ttl));
  m->msg_controllen = used;
}

// Switch an IPv4 socket between the modes of two words (DF, zero checksum): the ones no control
// message can ask for per datagram. Only the groups of datagrams that ask pay the syscalls.
void SetModes(int fd, uint32_t from, uint32_t to) {
  if ((from ^ to) & kOuterNoDf) {
    int mode = (to & kOuterNoDf) ? IP_PMTUDISC_DONT : IP_PMTUDISC_DO;
    setsockopt(fd, IPPROTO_IP, IP_MTU_DISCOVER, &mode, sizeof(mode));
  }
  if ((from ^ to) & kOuterNoCsum) {
    int on = (to & kOuterNoCsum) ? 1 : 0;
    setsockopt(fd, SOL_SOCKET, SO_NO_CHECK, &on, sizeof(on));
  }
}

// Scratch arrays for sendmmsg, grown once to the largest batch seen.
struct SendScratch {
  std::vector<mmsghdr> msgs;
  std::vector<iovec> iovs;
  // raw IPv4 datagrams with a checksum: their UDP header, copied (a flood shares the bytes)
  std::vector<iovec> rawIovs;
  std::vector<std::array<uint8_t, 8>> udpHdrs;
  std::vector<sockaddr_storage> addrs;
  std::vector<Control> controls;
  // first[k]: the first datagram of message k (a run of datagrams sent as one with GSO).
  std::vector<uint32_t> first;
  // modes[k]: the socket modes (kOuterModes bits) message k needs.
  std::vector<uint32_t> modes;
  void Reserve(size_t n) {
    if (msgs.size() < n) {
      msgs.resize(n);
      iovs.resize(n);
      rawIovs.resize(2 * n);
      udpHdrs.resize(n);
      addrs.resize(n);
      controls.resize(n);
      first.resize(n + 1);
      modes.resize(n);
    }
  }
};
// UDP GSO limits: segments per send (UDP_MAX_SEGMENTS on older kernels) and bytes per send.
constexpr uint32_t kGsoMaxSegments = 64;
constexpr uint32_t kGsoMaxBytes = 65000;
// Per thread: each worker_threads worker runs its own engine and calls these concurrently.
thread_local SendScratch g_send;
// The first errno of this thread's last sendBatch/writeBatch call (0 when everything went).
thread_local int g_lastErrno = 0;

// The source address the kernel picks towards an IPv4 destination (network order), for the
// UDP checksum of raw datagrams from a socket bound to 0.0.0.0: asked of the routing table with
// a connected probe socket, kept 10 s (a route change is followed within that).
struct SourceEntry {
  uint32_t src;
  uint64_t until;
};
thread_local std::unordered_map<uint32_t, SourceEntry> g_sources;
// The interface this thread's sockets send multicast from (mcastIf), 0 for none: a group has no
// route of its own, so the probe below asks with the same interface.
thread_local int g_mcastIf = 0;
uint64_t NowMs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000 + ts.tv_nsec / 1000000;
}
uint32_t SourceFor(uint32_t dst) {
  uint64_t now = NowMs();
  auto it = g_sources.find(dst);
  if (it != g_sources.end() && it->second.until > now) return it->second.src;
  uint32_t src = 0;
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd >= 0) {
    sockaddr_in sin = {};
    sin.sin_family = AF_INET;
    sin.sin_port = htons(4789);
    sin.sin_addr.s_addr = dst;
    socklen_t len = sizeof(sin);
    if (IN_MULTICAST(ntohl(dst)) && g_mcastIf > 0) {
      ip_mreqn mr = {};
      mr.imr_ifindex = g_mcastIf;
      setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
    }
    if (connect(fd, reinterpret_cast<sockaddr*>(&sin), sizeof(sin)) == 0 &&
        getsockname(fd, reinterpret_cast<sockaddr*>(&sin), &len) == 0) {
      src = sin.sin_addr.s_addr;
    }
    close(fd);
  }
  if (g_sources.size() > 65536) g_sources.clear();
  g_sources[dst] = {src, now + 10000};
  return src;
}

// A raw IPv4 datagram's message k: its UDP header copied into the scratch with the checksum
// over the pseudo header (source `local`, or the routing table's for 0.0.0.0) filled in, the
// rest of the datagram from the slab. `payloadSum` caches the sum of a flood's shared bytes.
void RawChecksumIov(uint32_t k, const uint8_t* dgram, uint32_t len, const sockaddr_in* to, uint32_t local,
                    const uint8_t** lastPayload, uint32_t* payloadSum) {
  uint8_t* h = g_send.udpHdrs[k].data();
  memcpy(h, dgram, 8);
  h[6] = h[7] = 0;
  if (*lastPayload != dgram) {
    *payloadSum = OnesSum(dgram + 8, len - 8);
    *lastPayload = dgram;
  }
  uint32_t src = ntohl(local != 0 ? local : SourceFor(to->sin_addr.s_addr));
  uint32_t dst = ntohl(to->sin_addr.s_addr);
  uint64_t acc = *payloadSum + OnesSum(h, 8) + (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
                 IPPROTO_UDP + len;
  while (acc >> 16) acc = (acc & 0xffff) + (acc >> 16);
  uint16_t sum = static_cast<uint16_t>(~acc & 0xffff);
  if (sum == 0) sum = 0xffff;  // 0 means "no checksum" (RFC 768)
  h[6] = static_cast<uint8_t>(sum >> 8);
  h[7] = static_cast<uint8_t>(sum & 0xff);
  g_send.rawIovs[2 * k] = {h, 8};
  g_send.rawIovs[2 * k + 1] = {const_cast<uint8_t*>(dgram) + 8, len - 8};
  g_send.msgs[k].msg_hdr.msg_iov = &g_send.rawIovs[2 * k];
  g_send.msgs[k].msg_hdr.msg_iovlen = 2;
}

// Send messages [pos, end) of the scratch with sendmmsg; message k carries datagrams
// [first[k], first[k + 1]), whose outcomes go to st. sendmmsg stops at the first message the
// kernel refuses: a full queue (EAGAIN, ENOBUFS) ends the send, and the index of that message
// is returned; any other refusal (EMSGSIZE, ENETUNREACH, a bad address, EIO for GSO on a device
// without checksum offload) is about that message, so it is skipped and the rest still go.
// Returns `end` when every message had its outcome.
uint32_t SendMessages(int fd, uint32_t pos, uint32_t end, const uint32_t* first, uint8_t* st, uint32_t* sent) {
  while (pos < end) {
    int n = sendmmsg(fd, g_send.msgs.data() + pos, end - pos, 0);
    if (n < 0) {
      if (errno == EINTR) continue;
      if (g_lastErrno == 0) g_lastErrno = errno;
      if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) return pos;
      memset(st + first[pos], kTxRefused, first[pos + 1] - first[pos]);
      pos++;
      continue;
    }
    uint32_t items = first[pos + n] - first[pos];
    memset(st + first[pos], kTxSent, items);
    pos += n;
    *sent += items;
  }
  return end;
}

// SendMessages over groups of messages that need the same socket modes (g_send.modes), the
// socket switched before each group that differs and back at the end.
uint32_t SendGrouped(int fd, uint32_t pos, uint32_t end, const uint32_t* first, uint8_t* st, uint32_t* sent) {
  const uint32_t* modes = g_send.modes.data();
  uint32_t cur = 0;
  while (pos < end) {
    uint32_t g = pos + 1;
    while (g < end && modes[g] == modes[pos]) g++;
    if (modes[pos] != cur) SetModes(fd, cur, modes[pos]);
    cur = modes[pos];
    uint32_t stop = SendMessages(fd, pos, g, first, st, sent);
    if (stop < g) {
      pos = stop;
      break;
    }
    pos = g;
  }
  if (cur != 0) SetModes(fd, cur, 0);
  return pos;
}

// The end of the run of datagrams from i on that one GSO message can carry: one length, one
// address, within the segment and byte limits, and `same(j)` (any further condition) for each.
template <typename Same>
uint32_t RunEnd(uint32_t i, uint32_t count, const uint32_t* lengths, const uint8_t* slots, Same same) {
  uint32_t j = i + 1;
  while (j < count && j - i < kGsoMaxSegments && lengths[j] == lengths[i] &&
         (j - i + 1) * lengths[i] <= kGsoMaxBytes && memcmp(slots + j * kAddrLen, slots + i * kAddrLen, kAddrLen) == 0 &&
         same(j)) {
    j++;
  }
  return j;
}

// Whether the datagram to `slot` with outer words `o` (null: defaults) asks for a zero UDP
// checksum over IPv4. The kernel does no UDP GSO then (udp_send_skb refuses a GSO send from a
// SO_NO_CHECK socket with EINVAL), so such datagrams never form a run.
bool ZeroChecksum(const uint8_t* slot, const uint32_t* o) {
  return slot[0] == 4 && o != nullptr && (o[0] & kOuterNoCsum) != 0;
}

// The optional outer-header words argument: 2 per datagram, or null.
const uint32_t* OuterWords(const Napi::Value& v, uint32_t count) {
  if (!v.IsTypedArray()) return nullptr;
  auto a = v.As<Napi::Uint32Array>();
  if (a.ElementLength() < static_cast<size_t>(count) * 2) return nullptr;
  return a.Data();
}

// Message k: `iovlen` buffers from iov to the address in `slot`, with the outer header of
// `outer` (null: defaults) and UDP GSO of `gsoSize`-byte segments when not 0.
void SetMessage(uint32_t k, iovec* iov, size_t iovlen, const uint8_t* slot, bool raw, const uint32_t* outer,
                uint16_t gsoSize) {
  mmsghdr& m = g_send.msgs[k];
  memset(&m, 0, sizeof(m));
  m.msg_hdr.msg_iov = iov;
  m.msg_hdr.msg_iovlen = iovlen;
  m.msg_hdr.msg_name = &g_send.addrs[k];
  uint32_t word = outer ? outer[0] : 0;
  m.msg_hdr.msg_namelen = SlotToSockaddr(slot, &g_send.addrs[k], raw, outer ? outer[1] : 0);
  SetControl(&m.msg_hdr, &g_send.controls[k], slot[0], gsoSize, word);
  g_send.modes[k] = slot[0] == 4 ? (word & kOuterModes) : 0;
}

// sendBatch(fd, slab, offsets, lengths, addrs, count, flags, status, outer?, local?) -> sent
// count, or -errno if none. Datagram i is slab[offsets[i] .. +lengths[i]) to the address in slot
// i of `addrs`; its outcome goes to status[i] (kTxSent, kTxQueueFull, kTxRefused). flags: bit 0,
// a raw socket (the datagram carries its UDP header); bit 1, UDP GSO runs: consecutive datagrams
// of one length to one address and outer header (a flow's packets, as a TAP read hands them
// over) leave as one message with UDP_SEGMENT, cut by the kernel after its stack has been
// crossed once (a bound UDP socket only). `outer`: 2 words per datagram (see OuterFlag). `local`
// (raw IPv4): the bound address, network order, for the UDP checksums written here (0: the
// routing table's source); without it raw IPv4 datagrams keep the checksum they carry.
Napi::Value SendBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto slab = info[1].As<Napi::Uint8Array>();
  auto offsets = info[2].As<Napi::Uint32Array>();
  auto lengths = info[3].As<Napi::Uint32Array>();
  auto addrs = info[4].As<Napi::Uint8Array>();
  uint32_t count = info[5].As<Napi::Number>().Uint32Value();
  uint32_t flags = info[6].IsNumber() ? info[6].As<Napi::Number>().Uint32Value() : (info[6].ToBoolean() ? 1 : 0);
  bool raw = (flags & 1) != 0;
  bool runs = (flags & 2) != 0 && !raw;
  auto status = info[7].As<Napi::Uint8Array>();
  const uint32_t* outer = info.Length() > 8 ? OuterWords(info[8], count) : nullptr;
  bool rawSum = raw && info.Length() > 9 && info[9].IsNumber();
  uint32_t local = rawSum ? htonl(info[9].As<Napi::Number>().Uint32Value()) : 0;
  if (count > offsets.ElementLength() || count > lengths.ElementLength() ||
      static_cast<size_t>(count) * kAddrLen > addrs.ByteLength() || count > status.ByteLength()) {
    THROW_TYPE(env, "sendBatch: count exceeds the batch arrays");
  }
  uint8_t* st = status.Data();
  g_send.Reserve(count);
  uint8_t* base = slab.Data();
  const uint8_t* slots = addrs.Data();
  size_t slabLen = slab.ByteLength();
  uint32_t msgCount = 0;
  const uint8_t* lastPayload = nullptr;
  uint32_t payloadSum = 0;
  auto same = [&](uint32_t k) {
    return static_cast<size_t>(offsets[k]) + lengths[k] <= slabLen &&
           (outer == nullptr || (outer[2 * k] == outer[2 * (k - 1)] && outer[2 * k + 1] == outer[2 * (k - 1) + 1]));
  };
  for (uint32_t i = 0; i < count;) {
    if (static_cast<size_t>(offsets[i]) + lengths[i] > slabLen) THROW_TYPE(env, "sendBatch: datagram outside the slab");
    if (raw && lengths[i] < 8) THROW_TYPE(env, "sendBatch: raw datagram without its UDP header");
    uint32_t j = runs && !ZeroChecksum(slots + i * kAddrLen, outer ? outer + 2 * i : nullptr)
                     ? RunEnd(i, count, lengths.Data(), slots, same)
                     : i + 1;
    for (uint32_t k = i; k < j; k++) {
      g_send.iovs[k].iov_base = base + offsets[k];
      g_send.iovs[k].iov_len = lengths[k];
    }
    const uint8_t* slot = slots + i * kAddrLen;
    const uint32_t* o = outer ? outer + 2 * i : nullptr;
    SetMessage(msgCount, &g_send.iovs[i], j - i, slot, raw, o, j - i > 1 ? static_cast<uint16_t>(lengths[i]) : 0);
    if (rawSum && slot[0] == 4 && !(o && (o[0] & kOuterNoCsum))) {
      RawChecksumIov(msgCount, base + offsets[i], lengths[i],
                     reinterpret_cast<const sockaddr_in*>(&g_send.addrs[msgCount]), local, &lastPayload, &payloadSum);
    }
    if (raw) g_send.modes[msgCount] &= ~kOuterNoCsum;  // raw: the checksum is ours, not the socket's
    g_send.first[msgCount++] = i;
    i = j;
  }
  g_send.first[msgCount] = count;
  uint32_t sent = 0;
  uint32_t* first = g_send.first.data();
  g_lastErrno = 0;
  uint32_t stop = SendGrouped(fd, 0, msgCount, first, st, &sent);
  if (stop < msgCount) memset(st + first[stop], kTxQueueFull, count - first[stop]);
  if (sent == 0 && g_lastErrno != 0) return Napi::Number::New(env, -g_lastErrno);
  return Napi::Number::New(env, sent);
}

// sendBatchPool(rawFd, poolFds, poolPorts, slab, offsets, lengths, addrs, count, status, outer?,
// local?) -> sent count, or -errno if none. A raw socket's batch (each datagram starts with our
// UDP header) where runs of consecutive datagrams of one length, to one address, with one outer
// header, from one source port that a pool socket is bound to, leave from that socket as one UDP
// GSO message (the UDP header left to the kernel); the rest goes through the raw socket with
// sendmmsg. Runs and the rest are sent in batch order, so a flow's datagrams keep theirs.
// Outcomes in status[], `outer` and `local` as for sendBatch.
Napi::Value SendBatchPool(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int rawFd = info[0].As<Napi::Number>().Int32Value();
  auto poolFds = info[1].As<Napi::Int32Array>();
  auto poolPorts = info[2].As<Napi::Uint32Array>();
  auto slab = info[3].As<Napi::Uint8Array>();
  auto offsets = info[4].As<Napi::Uint32Array>();
  auto lengths = info[5].As<Napi::Uint32Array>();
  auto addrs = info[6].As<Napi::Uint8Array>();
  uint32_t count = info[7].As<Napi::Number>().Uint32Value();
  auto status = info[8].As<Napi::Uint8Array>();
  const uint32_t* outer = info.Length() > 9 ? OuterWords(info[9], count) : nullptr;
  bool rawSum = info.Length() > 10 && info[10].IsNumber();
  uint32_t local = rawSum ? htonl(info[10].As<Napi::Number>().Uint32Value()) : 0;
  if (count > offsets.ElementLength() || count > lengths.ElementLength() ||
      static_cast<size_t>(count) * kAddrLen > addrs.ByteLength() || count > status.ByteLength() ||
      poolFds.ElementLength() != poolPorts.ElementLength()) {
    THROW_TYPE(env, "sendBatchPool: count exceeds the batch arrays");
  }
  uint8_t* st = status.Data();
  uint8_t* base = slab.Data();
  const uint8_t* slots = addrs.Data();
  size_t slabLen = slab.ByteLength();
  for (uint32_t i = 0; i < count; i++) {
    if (lengths[i] < 8 || static_cast<size_t>(offsets[i]) + lengths[i] > slabLen) {
      THROW_TYPE(env, "sendBatchPool: datagram outside the slab");
    }
  }
  g_send.Reserve(count);
  g_lastErrno = 0;
  uint32_t sent = 0;
  bool full = false;
  const uint8_t* lastPayload = nullptr;
  uint32_t payloadSum = 0;
  auto portOf = [&](uint32_t i) { return (static_cast<uint32_t>(base[offsets[i]]) << 8) | base[offsets[i] + 1]; };
  auto sameOuter = [&](uint32_t a, uint32_t b) {
    return outer == nullptr || (outer[2 * a] == outer[2 * b] && outer[2 * a + 1] == outer[2 * b + 1]);
  };
  // Raw datagrams [a, b) through sendmmsg; false when the queue is full (the rest is marked so).
  auto sendRaw = [&](uint32_t a, uint32_t b) {
    for (uint32_t k = a; k < b; k++) {
      g_send.iovs[k].iov_base = base + offsets[k];
      g_send.iovs[k].iov_len = lengths[k];
      const uint8_t* slot = slots + k * kAddrLen;
      const uint32_t* o = outer ? outer + 2 * k : nullptr;
      SetMessage(k, &g_send.iovs[k], 1, slot, true, o, 0);
      if (rawSum && slot[0] == 4 && !(o && (o[0] & kOuterNoCsum))) {
        RawChecksumIov(k, base + offsets[k], lengths[k], reinterpret_cast<const sockaddr_in*>(&g_send.addrs[k]),
                       local, &lastPayload, &payloadSum);
      }
      g_send.modes[k] &= ~kOuterNoCsum;
    }
    for (uint32_t k = a; k <= b; k++) g_send.first[k] = k;  // one datagram per message
    return SendGrouped(rawFd, a, b, g_send.first.data(), st, &sent) == b;
  };
  uint32_t a = 0;  // first datagram not sent yet
  for (uint32_t i = 0; i < count && !full;) {
    uint32_t j = RunEnd(i, count, lengths.Data(), slots,
                        [&](uint32_t k) { return portOf(k) == portOf(i) && sameOuter(k, i); });
    int pool = -1;
    if (j - i > 1 && !ZeroChecksum(slots + i * kAddrLen, outer ? outer + 2 * i : nullptr)) {
      for (uint32_t p = 0; p < poolPorts.ElementLength(); p++) {
        if (poolPorts[p] == portOf(i)) pool = static_cast<int>(p);
      }
    }
    if (pool < 0) {
      i = j;
      continue;
    }
    if (a < i && !sendRaw(a, i)) {
      full = true;  // marked below, from the first one without an outcome
      break;
    }
    // the run, without our UDP headers: the kernel writes one per segment
    uint32_t seg = lengths[i] - 8;
    for (uint32_t k = i; k < j; k++) {
      g_send.iovs[k].iov_base = base + offsets[k] + 8;
      g_send.iovs[k].iov_len = seg;
    }
    const uint8_t* slot = slots + i * kAddrLen;
    SetMessage(i, &g_send.iovs[i], j - i, slot, false, outer ? outer + 2 * i : nullptr, static_cast<uint16_t>(seg));
    g_send.first[i] = i;
    g_send.first[i + 1] = j;
    uint32_t stop = SendGrouped(poolFds[pool], i, i + 1, g_send.first.data(), st, &sent);
    if (stop == i) {
      full = true;
      a = i;
      break;
    }
    a = i = j;
  }
  if (!full && a < count && !sendRaw(a, count)) full = true;
  if (full) {
    // everything from the first datagram without an outcome on is queue-full
    for (uint32_t k = a; k < count; k++) {
      if (st[k] != kTxSent && st[k] != kTxRefused) st[k] = kTxQueueFull;
    }
  }
  if (sent == 0 && g_lastErrno != 0) return Napi::Number::New(env, -g_lastErrno);
  return Napi::Number::New(env, sent);
}

// sendGso(fd, slab, offset, length, segSize, addrs, slot, word?, label?) -> bytes sent, or
// -errno. One sendmsg of slab[offset .. +length) to the address in slot `slot` of `addrs`, which
// the kernel cuts into datagrams of segSize bytes (the last may be shorter): UDP_SEGMENT, UDP
// GSO, with the outer header of word/label (see OuterFlag; 0: defaults). The caller keeps length
// within 64 KiB and 64 segments, and sends no zero-checksum IPv4 word here (EINVAL: see
// ZeroChecksum).
Napi::Value SendGso(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto slab = info[1].As<Napi::Uint8Array>();
  uint32_t offset = info[2].As<Napi::Number>().Uint32Value();
  uint32_t length = info[3].As<Napi::Number>().Uint32Value();
  uint32_t segSize = info[4].As<Napi::Number>().Uint32Value();
  auto addrs = info[5].As<Napi::Uint8Array>();
  uint32_t slot = info[6].As<Napi::Number>().Uint32Value();
  uint32_t words[2] = {info.Length() > 7 && info[7].IsNumber() ? info[7].As<Napi::Number>().Uint32Value() : 0,
                       info.Length() > 8 && info[8].IsNumber() ? info[8].As<Napi::Number>().Uint32Value() : 0};
  if (static_cast<size_t>(offset) + length > slab.ByteLength() ||
      (static_cast<size_t>(slot) + 1) * kAddrLen > addrs.ByteLength() || segSize == 0 || segSize > 0xffff) {
    THROW_TYPE(env, "sendGso: datagram or address outside its array");
  }
  g_send.Reserve(1);
  iovec iov = {slab.Data() + offset, length};
  SetMessage(0, &iov, 1, addrs.Data() + static_cast<size_t>(slot) * kAddrLen, false, words,
             segSize < length ? static_cast<uint16_t>(segSize) : 0);
  uint32_t first[2] = {0, 1};
  uint8_t st = 0;
  uint32_t sent = 0;
  g_lastErrno = 0;
  SendGrouped(fd, 0, 1, first, &st, &sent);
  if (sent == 1) return Napi::Number::New(env, static_cast<double>(length));
  return Napi::Number::New(env, -(g_lastErrno != 0 ? g_lastErrno : EIO));
}

// pathMtu(address) -> the MTU of the route towards `address` now, a path MTU the kernel learned
// (an ICMP "fragmentation needed" / "packet too big", kept as a route exception) included; or
// -errno. A connected UDP socket's IP_MTU / IPV6_MTU, the socket closed again at once.
Napi::Value PathMtu(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string text = info[0].As<Napi::String>().Utf8Value();
  sockaddr_storage ss = {};
  socklen_t len = 0;
  auto* sin = reinterpret_cast<sockaddr_in*>(&ss);
  auto* sin6 = reinterpret_cast<sockaddr_in6*>(&ss);
  if (inet_pton(AF_INET, text.c_str(), &sin->sin_addr) == 1) {
    sin->sin_family = AF_INET;
    sin->sin_port = htons(4789);
    len = sizeof(*sin);
  } else if (inet_pton(AF_INET6, text.c_str(), &sin6->sin6_addr) == 1) {
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(4789);
    len = sizeof(*sin6);
  } else {
    return Napi::Number::New(env, -EINVAL);
  }
  int fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  int mtu = 0;
  socklen_t ml = sizeof(mtu);
  int rc = connect(fd, reinterpret_cast<sockaddr*>(&ss), len);
  if (rc == 0) {
    rc = ss.ss_family == AF_INET ? getsockopt(fd, IPPROTO_IP, IP_MTU, &mtu, &ml)
                                 : getsockopt(fd, IPPROTO_IPV6, IPV6_MTU, &mtu, &ml);
  }
  int err = errno;
  close(fd);
  return Napi::Number::New(env, rc == 0 ? mtu : -err);
}

// mcastIf(fd, family, ifindex): send multicast from interface `ifindex` (IP_MULTICAST_IF /
// IPV6_MULTICAST_IF), as Linux VXLAN sends a group's datagrams out of its `dev`: a group has no
// route of its own. Throws (a setup call).
Napi::Value McastIf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int family = info[1].As<Napi::Number>().Int32Value();
  int ifindex = info[2].As<Napi::Number>().Int32Value();
  int rc;
  if (family == 4) {
    ip_mreqn mr = {};
    mr.imr_ifindex = ifindex;
    rc = setsockopt(fd, IPPROTO_IP, IP_MULTICAST_IF, &mr, sizeof(mr));
  } else {
    rc = setsockopt(fd, IPPROTO_IPV6, IPV6_MULTICAST_IF, &ifindex, sizeof(ifindex));
  }
  if (rc < 0) THROW_SYS(env, "setsockopt(IP_MULTICAST_IF)", errno, "interface " + std::to_string(ifindex));
  if (family == 4) g_mcastIf = ifindex;
  return env.Undefined();
}

// mcastMembership(fd, family, group, ifindex, join): join (IP_ADD_MEMBERSHIP / IPV6_JOIN_GROUP)
// or leave (IP_DROP_MEMBERSHIP / IPV6_LEAVE_GROUP) multicast group `group` on interface
// `ifindex`, for socket `fd`. The kernel reports the membership (IGMP / MLD) and lists it in
// `ip maddr`; closing the socket leaves too. Throws.
Napi::Value McastMembership(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  int family = info[1].As<Napi::Number>().Int32Value();
  std::string group = info[2].As<Napi::String>().Utf8Value();
  int ifindex = info[3].As<Napi::Number>().Int32Value();
  bool join = info[4].ToBoolean().Value();
  int rc;
  if (family == 4) {
    ip_mreqn mr = {};
    if (inet_pton(AF_INET, group.c_str(), &mr.imr_multiaddr) != 1) THROW_TYPE(env, "mcastMembership: bad group " + group);
    mr.imr_ifindex = ifindex;
    rc = setsockopt(fd, IPPROTO_IP, join ? IP_ADD_MEMBERSHIP : IP_DROP_MEMBERSHIP, &mr, sizeof(mr));
  } else {
    ipv6_mreq mr = {};
    if (inet_pton(AF_INET6, group.c_str(), &mr.ipv6mr_multiaddr) != 1) THROW_TYPE(env, "mcastMembership: bad group " + group);
    mr.ipv6mr_interface = ifindex;
    rc = setsockopt(fd, IPPROTO_IPV6, join ? IPV6_JOIN_GROUP : IPV6_LEAVE_GROUP, &mr, sizeof(mr));
  }
  if (rc < 0) THROW_SYS(env, join ? "setsockopt(IP_ADD_MEMBERSHIP)" : "setsockopt(IP_DROP_MEMBERSHIP)", errno, "group " + group);
  return env.Undefined();
}

// lastErrno() -> the first errno of the last sendBatch/writeBatch (0 if all went).
Napi::Value LastErrno(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), g_lastErrno);
}

// ---------------------------------------------------------------------------------------------
// TAP I/O through io_uring, per thread. A TAP takes one frame per read or write, so without it
// every frame costs a syscall. Measured on a 6.x kernel (64-byte frames): a batch of 8 or more
// TAP writes as one io_uring_enter costs 25-35 % less per frame than a writev each, a batch of 1
// costs 45 % more; 32 reads of queued frames cost 14 % less than 32 readv, but a read that finds
// the queue empty costs about 350 ns (a readv that does, about a syscall). So writes of
// kUringMinBatch frames or more go through the ring, and reads only where the last drain found a
// deep queue, for half that depth (see Poller::DrainTap). Reads and writes carry RWF_NOWAIT: an
// empty queue or a full one answers EAGAIN at once, as on the non-blocking fd, and the thread
// never waits in the ring. Anything the ring cannot do (built without liburing, a kernel without
// io_uring, io_uring_disabled, a seccomp filter) leaves readv/writev, which always work.

constexpr uint32_t kUringMinBatch = 8;
constexpr unsigned kUringEntries = 256;

struct UringState {
  bool wanted = true;  // setTapIo(false) keeps this thread on readv/writev
  bool tried = false;
  bool ok = false;
  int err = 0;  // why not: the errno of the failed setup (ENOSYS: built without liburing)
  double reads = 0, writes = 0, enters = 0;
#ifdef VTEP_URING
  io_uring ring;
#endif
  ~UringState() {
#ifdef VTEP_URING
    if (ok) io_uring_queue_exit(&ring);
#endif
  }
};
thread_local UringState g_uring;

#ifdef VTEP_URING
// Sets the ring up on first use: single issuer with deferred task work where the kernel has
// them (6.1), else plain; then checks that it reads and writes vectors.
bool UringSetup() {
  io_uring_params p = {};
  p.flags = IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN;
  int rc = io_uring_queue_init_params(kUringEntries, &g_uring.ring, &p);
  if (rc == -EINVAL) {
    p = {};
    rc = io_uring_queue_init_params(kUringEntries, &g_uring.ring, &p);
  }
  if (rc < 0) {
    g_uring.err = -rc;
    return false;
  }
  io_uring_probe* probe = io_uring_get_probe_ring(&g_uring.ring);
  bool ops = probe != nullptr && io_uring_opcode_supported(probe, IORING_OP_READV) &&
             io_uring_opcode_supported(probe, IORING_OP_WRITEV);
  if (probe != nullptr) io_uring_free_probe(probe);
  if (!ops) {
    io_uring_queue_exit(&g_uring.ring);
    g_uring.err = EOPNOTSUPP;
    return false;
  }
  return true;
}
#endif

bool UringReady() {
  if (!g_uring.wanted) return false;
  if (!g_uring.tried) {
    g_uring.tried = true;
    // VTEP_IO_URING=0 in the environment: every thread off, as with `ioUring: false`
    const char* env = getenv("VTEP_IO_URING");
    if (env != nullptr && strcmp(env, "0") == 0) {
      g_uring.wanted = false;
      return false;
    }
#ifdef VTEP_URING
    g_uring.ok = UringSetup();
#else
    g_uring.err = ENOSYS;
#endif
  }
  return g_uring.ok;
}

// Turns the ring off for this thread after a failure of the ring itself (not of an operation):
// the thread goes on with readv/writev, and tapIoStats says why.
void UringFailed(int err) {
#ifdef VTEP_URING
  io_uring_queue_exit(&g_uring.ring);
#endif
  g_uring.ok = false;
  g_uring.err = err;
}

// The results of a run up to the first that says the ring cannot do this file at all
// (EOPNOTSUPP: a TAP without non-blocking reads and writes in the ring, kernels before 5.x's
// FMODE_NOWAIT for tun): the ring is then off for this thread, and the caller does that
// operation and the rest the plain way.
uint32_t UringUsable(const int32_t* res, uint32_t n) {
  for (uint32_t i = 0; i < n; i++) {
    if (res[i] == -EOPNOTSUPP) {
      UringFailed(EOPNOTSUPP);
      return i;
    }
  }
  return n;
}

// Runs n vector operations on fd through the ring, kUringEntries to an io_uring_enter: op i
// moves iovs[i * per .. +per), and its result (bytes, or -errno) goes to res[i]. Returns how many
// operations have a result, from the first: fewer than n only when the ring itself failed before
// submitting the rest, or the file answered EOPNOTSUPP (it is then off; the caller does those the
// plain way).
uint32_t UringRun(bool write, int fd, iovec* iovs, int per, uint32_t n, int32_t* res) {
#ifdef VTEP_URING
  io_uring* ring = &g_uring.ring;
  uint32_t done = 0;
  while (done < n) {
    uint32_t chunk = n - done < kUringEntries ? n - done : kUringEntries;
    for (uint32_t k = 0; k < chunk; k++) {
      io_uring_sqe* sqe = io_uring_get_sqe(ring);  // the queue is empty here: never null
      iovec* v = iovs + static_cast<size_t>(done + k) * per;
      if (write) io_uring_prep_writev(sqe, fd, v, per, 0);
      else io_uring_prep_readv(sqe, fd, v, per, 0);
      sqe->rw_flags = RWF_NOWAIT;
      sqe->user_data = done + k;
    }
    int rc;
    do {
      rc = io_uring_submit_and_wait(ring, chunk);
    } while (rc == -EINTR);
    g_uring.enters++;
    if (rc < 0) {
      UringFailed(-rc);
      return done;
    }
    // With RWF_NOWAIT every operation completes within the enter; a result that does not come
    // is a broken ring: the operation counts as refused.
    for (uint32_t k = 0; k < chunk; k++) res[done + k] = -EIO;
    for (uint32_t seen = 0; seen < chunk; seen++) {
      io_uring_cqe* cqe;
      int wc = io_uring_peek_cqe(ring, &cqe);
      if (wc < 0) {
        UringFailed(-wc);
        return done + chunk;
      }
      if (cqe->user_data >= done && cqe->user_data < done + chunk) res[cqe->user_data] = cqe->res;
      io_uring_cqe_seen(ring, cqe);
    }
    uint32_t usable = UringUsable(res + done, chunk);
    if (usable < chunk) return done + usable;
    done += chunk;
  }
  return n;
#else
  return 0;
#endif
}

// Scratch for the ring's batches (up to two buffers an operation), grown once to the largest seen.
struct UringScratch {
  std::vector<iovec> iovs;
  std::vector<int32_t> res;
  void Reserve(size_t n) {
    if (res.size() < n) {
      iovs.resize(2 * n);
      res.resize(n);
    }
  }
};
thread_local UringScratch g_ring;

// setTapIo(useUring): whether this thread may use io_uring for TAP I/O (default yes).
// tapIoStats() -> [mode, errno, frames read, frames written, io_uring_enter calls]: mode 1 io_uring
// set up, 0 readv/writev (errno says why; 0: not tried yet or turned off).
Napi::Value SetTapIo(const Napi::CallbackInfo& info) {
  g_uring.wanted = info[0].ToBoolean();
  return info.Env().Undefined();
}

Napi::Value TapIoStats(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool ok = UringReady();
  auto a = Napi::Array::New(env, 5);
  a.Set(0u, Napi::Number::New(env, ok ? 1 : 0));
  a.Set(1u, Napi::Number::New(env, g_uring.wanted ? g_uring.err : 0));
  a.Set(2u, Napi::Number::New(env, g_uring.reads));
  a.Set(3u, Napi::Number::New(env, g_uring.writes));
  a.Set(4u, Napi::Number::New(env, g_uring.enters));
  return a;
}

// writeBatch(fd, slab, offsets, lengths, count, meta, metaLen, status) -> written count, or
// -errno; status[i] as for sendBatch.
// One write per frame (a TAP takes one frame per write): a batch of kUringMinBatch or more as
// one io_uring_enter, else a writev each; `meta` (may be null) supplies a metaLen-byte vnet
// header per frame in front of it.
Napi::Value WriteBatch(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  auto slab = info[1].As<Napi::Uint8Array>();
  auto offsets = info[2].As<Napi::Uint32Array>();
  auto lengths = info[3].As<Napi::Uint32Array>();
  uint32_t count = info[4].As<Napi::Number>().Uint32Value();
  bool hasMeta = info[5].IsTypedArray();
  uint32_t metaLen = info[6].As<Napi::Number>().Uint32Value();
  uint8_t* meta = hasMeta ? info[5].As<Napi::Uint8Array>().Data() : nullptr;
  auto status = info[7].As<Napi::Uint8Array>();
  uint8_t* st = status.Data();
  if (count > status.ByteLength() || count > offsets.ElementLength() || count > lengths.ElementLength() ||
      (hasMeta && static_cast<size_t>(count) * metaLen > info[5].As<Napi::Uint8Array>().ByteLength())) {
    THROW_TYPE(env, "writeBatch: count exceeds the batch arrays");
  }
  uint8_t* base = slab.Data();
  size_t slabLen = slab.ByteLength();
  for (uint32_t i = 0; i < count; i++) {
    if (static_cast<size_t>(offsets[i]) + lengths[i] > slabLen) THROW_TYPE(env, "writeBatch: frame outside the slab");
  }
  int per = hasMeta ? 2 : 1;
  auto frameIov = [&](uint32_t i, iovec* iov) {
    int n = 0;
    if (hasMeta) iov[n++] = {meta + i * metaLen, metaLen};
    iov[n++] = {base + offsets[i], lengths[i]};
  };
  uint32_t written = 0;
  g_lastErrno = 0;
  auto outcome = [&](uint32_t i, ssize_t rc, int err) {
    if (rc < 0) {
      if (g_lastErrno == 0) g_lastErrno = err;
      st[i] = (err == EAGAIN || err == EWOULDBLOCK || err == ENOBUFS) ? kTxQueueFull : kTxRefused;
      return;  // one bad frame must not stop the rest
    }
    st[i] = kTxSent;
    written++;
  };
  uint32_t from = 0;  // the frames before it went through the ring
  if (count >= kUringMinBatch && UringReady()) {
    g_ring.Reserve(count);
    for (uint32_t i = 0; i < count; i++) frameIov(i, &g_ring.iovs[static_cast<size_t>(i) * per]);
    from = UringRun(true, fd, g_ring.iovs.data(), per, count, g_ring.res.data());
    for (uint32_t i = 0; i < from; i++) {
      int32_t r = g_ring.res[i];
      outcome(i, r, r < 0 ? -r : 0);
    }
    g_uring.writes += written;
  }
  for (uint32_t i = from; i < count; i++) {
    iovec iov[2];
    frameIov(i, iov);
    ssize_t rc;
    do {
      rc = writev(fd, iov, per);
    } while (rc < 0 && errno == EINTR);
    outcome(i, rc, rc < 0 ? errno : 0);
  }
  if (written == 0 && g_lastErrno != 0) return Napi::Number::New(env, -g_lastErrno);
  return Napi::Number::New(env, written);
}

// socketDrops(fd) -> datagrams the kernel dropped for this socket (receive buffer full, …), from
// SO_MEMINFO's SK_MEMINFO_DROPS; -errno if unavailable.
Napi::Value SocketDrops(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  uint32_t mem[SK_MEMINFO_VARS];
  socklen_t len = sizeof(mem);
  if (getsockopt(fd, SOL_SOCKET, SO_MEMINFO, mem, &len) < 0) return Napi::Number::New(env, -errno);
  if (len < (SK_MEMINFO_DROPS + 1) * sizeof(uint32_t)) return Napi::Number::New(env, -ENOTSUP);
  return Napi::Number::New(env, mem[SK_MEMINFO_DROPS]);
}

// closeFd(fd)
Napi::Value CloseFd(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  if (close(fd) < 0) THROW_SYS(env, "close", errno, "fd " + std::to_string(fd));
  return env.Undefined();
}

// sdNotify(socketPath, state) -> 0, or -errno. systemd's readiness protocol (sd_notify(3)): one
// datagram on the AF_UNIX socket named by $NOTIFY_SOCKET ("@..." is an abstract address).
// Node's dgram has no unix datagram sockets, hence this.
Napi::Value SdNotify(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string path = info[0].As<Napi::String>().Utf8Value();
  std::string state = info[1].As<Napi::String>().Utf8Value();
  sockaddr_un sun;
  memset(&sun, 0, sizeof(sun));
  sun.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(sun.sun_path)) return Napi::Number::New(env, -EINVAL);
  memcpy(sun.sun_path, path.data(), path.size());
  if (sun.sun_path[0] == '@') sun.sun_path[0] = '\0';
  socklen_t len = offsetof(sockaddr_un, sun_path) + path.size();
  int fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  ssize_t rc = sendto(fd, state.data(), state.size(), MSG_NOSIGNAL, reinterpret_cast<sockaddr*>(&sun), len);
  int err = errno;
  close(fd);
  return Napi::Number::New(env, rc < 0 ? -err : 0);
}

// peerCred(fd) -> [pid, uid, gid] of the process at the other end of a connected unix socket
// (SO_PEERCRED), or -errno: the control socket's audit trail names who asked for a change.
Napi::Value PeerCred(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = info[0].As<Napi::Number>().Int32Value();
  struct ucred cred;
  socklen_t len = sizeof(cred);
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0) return Napi::Number::New(env, -errno);
  Napi::Array out = Napi::Array::New(env, 3);
  out.Set(0u, Napi::Number::New(env, cred.pid));
  out.Set(1u, Napi::Number::New(env, cred.uid));
  out.Set(2u, Napi::Number::New(env, cred.gid));
  return out;
}

// bridgeAddIf(bridge, ifname, remove) -> 0 or -errno: put a device into a Linux bridge
// (SIOCBRADDIF, what `ip link set IF master BR` does for a bridge), so a re-created TAP is back in
// its bridge; with `remove`, take it out (SIOCBRDELIF).
Napi::Value BridgeAddIf(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string bridge = info[0].As<Napi::String>().Utf8Value();
  std::string name = info[1].As<Napi::String>().Utf8Value();
  bool remove = info.Length() > 2 && info[2].ToBoolean().Value();
  if (bridge.empty() || bridge.size() >= IFNAMSIZ || name.empty() || name.size() >= IFNAMSIZ)
    return Napi::Number::New(env, -EINVAL);
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Napi::Number::New(env, -errno);
  struct ifreq ifr;
  memset(&ifr, 0, sizeof(ifr));
  memcpy(ifr.ifr_name, name.data(), name.size());
  int rc = ioctl(fd, SIOCGIFINDEX, &ifr);
  if (rc == 0) {
    int index = ifr.ifr_ifindex;
    memset(&ifr, 0, sizeof(ifr));
    memcpy(ifr.ifr_name, bridge.data(), bridge.size());
    ifr.ifr_ifindex = index;
    rc = ioctl(fd, remove ? SIOCBRDELIF : SIOCBRADDIF, &ifr);
  }
  int err = errno;
  close(fd);
  return Napi::Number::New(env, rc < 0 ? -err : 0);
}

// copyBytes(dst, dstOffset, src, srcOffset, length): memmove between two typed arrays. JavaScript
// can only copy a range between two arrays through a view made for it (an allocation per
// copy); segmentation copies ranges per segment, so it comes here instead.
Napi::Value CopyBytes(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto dst = info[0].As<Napi::Uint8Array>();
  uint32_t dstOff = info[1].As<Napi::Number>().Uint32Value();
  auto src = info[2].As<Napi::Uint8Array>();
  uint32_t srcOff = info[3].As<Napi::Number>().Uint32Value();
  uint32_t len = info[4].As<Napi::Number>().Uint32Value();
  if (static_cast<size_t>(dstOff) + len > dst.ByteLength() || static_cast<size_t>(srcOff) + len > src.ByteLength()) {
    THROW_TYPE(env, "copyBytes: range outside its array");
  }
  memmove(dst.Data() + dstOff, src.Data() + srcOff, len);
  return env.Undefined();
}

// copySum(dst, dstOff, src, srcOff, len) -> the one's complement sum of the bytes copied (16-bit
// big-endian words from the start of the range, a last odd byte as a high byte), folded to 16
// bits: the copy and the checksum of a segment's payload in one pass over it (the kernel's
// csum_partial_copy). Ranges may not overlap.
Napi::Value CopySum(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto dst = info[0].As<Napi::Uint8Array>();
  uint32_t dstOff = info[1].As<Napi::Number>().Uint32Value();
  auto src = info[2].As<Napi::Uint8Array>();
  uint32_t srcOff = info[3].As<Napi::Number>().Uint32Value();
  uint32_t len = info[4].As<Napi::Number>().Uint32Value();
  if (static_cast<size_t>(dstOff) + len > dst.ByteLength() || static_cast<size_t>(srcOff) + len > src.ByteLength()) {
    THROW_TYPE(env, "copySum: range outside its array");
  }
  const uint8_t* p = src.Data() + srcOff;
  memmove(dst.Data() + dstOff, p, len);
  uint32_t s = OnesSum(p, len);
  return Napi::Number::New(env, s);
}

// copySegments(dst, dstOff, stride, src, srcOff, hdrLen, size, payload, n, sums): the copies
// of cutting a super-frame into n segments in one call instead of two a segment (an N-API call
// costs more than copying a 54-byte header). For k < n: the hdrLen header bytes at src[srcOff]
// go to dst[dstOff + k*stride], payload piece k (size bytes from src[srcOff + hdrLen + k*size],
// the last one what is left of payload) right behind them, and sums[k] gets the piece's one's
// complement sum, folded to 16 bits (as copySum returns it). The caller (gso.ts) fixes each
// segment's fields; nothing here reads a header. Misuse (ranges outside the arrays, pieces that
// do not cover payload exactly) throws.
Napi::Value CopySegments(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  auto dst = info[0].As<Napi::Uint8Array>();
  uint64_t dstOff = info[1].As<Napi::Number>().Uint32Value();
  uint64_t stride = info[2].As<Napi::Number>().Uint32Value();
  auto src = info[3].As<Napi::Uint8Array>();
  uint64_t srcOff = info[4].As<Napi::Number>().Uint32Value();
  uint64_t hdrLen = info[5].As<Napi::Number>().Uint32Value();
  uint64_t size = info[6].As<Napi::Number>().Uint32Value();
  uint64_t payload = info[7].As<Napi::Number>().Uint32Value();
  uint64_t n = info[8].As<Napi::Number>().Uint32Value();
  auto sums = info[9].As<Napi::Uint32Array>();
  if (n == 0 || size == 0 || n > sums.ElementLength() || payload > n * size ||
      (n > 1 && payload <= (n - 1) * size) || stride < hdrLen + std::min(size, payload)) {
    THROW_TYPE(env, "copySegments: the pieces do not cover the payload, or overlap");
  }
  // the last segment ends last: the others are stride >= hdrLen + size apart
  if (srcOff + hdrLen + payload > src.ByteLength() ||
      dstOff + (n - 1) * stride + hdrLen + (payload - (n - 1) * size) > dst.ByteLength()) {
    THROW_TYPE(env, "copySegments: ranges outside their arrays");
  }
  uint8_t* d = dst.Data() + dstOff;
  const uint8_t* hdr = src.Data() + srcOff;
  const uint8_t* p = hdr + hdrLen;
  uint32_t* out = sums.Data();
  for (uint64_t k = 0; k < n; k++, d += stride, p += size) {
    uint32_t chunk = static_cast<uint32_t>(k + 1 < n ? size : payload - k * size);
    memmove(d, hdr, hdrLen);
    memmove(d + hdrLen, p, chunk);
    out[k] = OnesSum(p, chunk);
  }
  return env.Undefined();
}

// errnoName(errno) -> "EAGAIN"
Napi::Value ErrnoNameJs(const Napi::CallbackInfo& info) {
  return Napi::String::New(info.Env(), ErrnoName(info[0].As<Napi::Number>().Int32Value()));
}

// ---------------------------------------------------------------------------------------------
// Busy polling (`busyPoll`), per thread: after a readiness callback that read something, the
// thread keeps draining every one of its pollers (its TAP queues and its socket) without
// sleeping, for up to `budget` microseconds since the last frame, then returns to epoll. An
// exchange of small packets then pays no wakeup on the way in or out; an idle thread spins never.

class Poller;
struct BusyState {
  uint32_t budgetUs = 0;
  bool spinning = false;
  std::vector<Poller*> pollers;  // the active pollers of this thread
  double spins = 0;              // spin periods started
  double polled = 0;             // frames and datagrams read while spinning
};
static thread_local BusyState busy;

static uint64_t NowUs() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

// setBusyPoll(us): this thread's budget (0: off). busyPollStats() -> [spins, polled]
Napi::Value SetBusyPoll(const Napi::CallbackInfo& info) {
  busy.budgetUs = info[0].As<Napi::Number>().Uint32Value();
  return info.Env().Undefined();
}

Napi::Value BusyPollStats(const Napi::CallbackInfo& info) {
  auto a = Napi::Array::New(info.Env(), 2);
  a.Set(0u, Napi::Number::New(info.Env(), busy.spins));
  a.Set(1u, Napi::Number::New(info.Env(), busy.polled));
  return a;
}

// ---------------------------------------------------------------------------------------------
// Poller: on readiness of a TAP or UDP fd, drain up to `slots` frames/datagrams into the slab
// (slot i at i * slotSize + headroom), store lengths (and source addresses, and vnet headers),
// then call back once with the count. No allocation per frame.

class Poller : public Napi::ObjectWrap<Poller> {
 public:
  static Napi::Function Init(Napi::Env env) {
    return DefineClass(env, "Poller",
                       {InstanceMethod("start", &Poller::Start), InstanceMethod("stop", &Poller::Stop),
                        InstanceMethod("close", &Poller::Close)});
  }

  // new Poller(kind, fd, slab, slotSize, headroom, slots, lengths, addrs|null, meta|null, metaLen, callback,
  //            segs|null, tos|null)
  // kind 0: TAP (readv), kind 1: UDP (recvmmsg). segs (UDP with UDP_GRO): per slot, the size of
  // the datagrams the kernel coalesced into it (0: one datagram). tos (UDP): per slot, the outer
  // IPv4 TOS / IPv6 traffic class (IP_RECVTOS / IPV6_RECVTCLASS; 0 when the kernel gave none).
  explicit Poller(const Napi::CallbackInfo& info) : Napi::ObjectWrap<Poller>(info) {
    Napi::Env env = info.Env();
    kind_ = info[0].As<Napi::Number>().Int32Value();
    fd_ = info[1].As<Napi::Number>().Int32Value();
    auto slab = info[2].As<Napi::Uint8Array>();
    slotSize_ = info[3].As<Napi::Number>().Uint32Value();
    headroom_ = info[4].As<Napi::Number>().Uint32Value();
    slots_ = info[5].As<Napi::Number>().Uint32Value();
    auto lengths = info[6].As<Napi::Uint32Array>();
    if (slotSize_ <= headroom_ || static_cast<size_t>(slots_) * slotSize_ > slab.ByteLength() ||
        lengths.ElementLength() < slots_) {
      Napi::TypeError::New(env, "Poller: slab, slot size, headroom and slots do not fit").ThrowAsJavaScriptException();
      return;
    }
    slabRef_ = Napi::Persistent(slab.As<Napi::Object>());
    lengthsRef_ = Napi::Persistent(lengths.As<Napi::Object>());
    slab_ = slab.Data();
    lengths_ = lengths.Data();
    if (info[7].IsTypedArray()) {
      auto a = info[7].As<Napi::Uint8Array>();
      if (a.ByteLength() < static_cast<size_t>(slots_) * kAddrLen) {
        Napi::TypeError::New(env, "Poller: address array too small").ThrowAsJavaScriptException();
        return;
      }
      addrsRef_ = Napi::Persistent(a.As<Napi::Object>());
      addrs_ = a.Data();
    }
    metaLen_ = info[9].As<Napi::Number>().Uint32Value();
    if (info[8].IsTypedArray()) {
      auto a = info[8].As<Napi::Uint8Array>();
      if (a.ByteLength() < static_cast<size_t>(slots_) * metaLen_) {
        Napi::TypeError::New(env, "Poller: meta array too small").ThrowAsJavaScriptException();
        return;
      }
      metaRef_ = Napi::Persistent(a.As<Napi::Object>());
      meta_ = a.Data();
    }
    callback_ = Napi::Persistent(info[10].As<Napi::Function>());
    if (info.Length() > 11 && info[11].IsTypedArray()) {
      auto a = info[11].As<Napi::Uint32Array>();
      if (a.ElementLength() < slots_) {
        Napi::TypeError::New(env, "Poller: segment size array too small").ThrowAsJavaScriptException();
        return;
      }
      segsRef_ = Napi::Persistent(a.As<Napi::Object>());
      segs_ = a.Data();
    }
    if (info.Length() > 12 && info[12].IsTypedArray()) {
      auto a = info[12].As<Napi::Uint8Array>();
      if (a.ByteLength() < slots_) {
        Napi::TypeError::New(env, "Poller: tos array too small").ThrowAsJavaScriptException();
        return;
      }
      tosRef_ = Napi::Persistent(a.As<Napi::Object>());
      tos_ = a.Data();
    }
    if (segs_ != nullptr || tos_ != nullptr) controls_.resize(slots_);
    context_ = new Napi::AsyncContext(env, "vtep:poll");
    msgs_.resize(slots_);
    iovs_.resize(slots_ * 2);
    names_.resize(slots_);
    dirty_ = slots_;
    uv_loop_t* loop = nullptr;
    napi_get_uv_event_loop(env, &loop);
    handle_ = new uv_poll_t;
    if (uv_poll_init(loop, handle_, fd_) != 0) {
      delete handle_;
      handle_ = nullptr;
      Napi::Error::New(env, "Poller: uv_poll_init failed").ThrowAsJavaScriptException();
      return;
    }
    handle_->data = this;
    // A worker thread's environment may be torn down with the poll still open (process.exit on
    // the main thread terminates every worker): close it then, or Node aborts on a loop with
    // open handles.
    napi_add_async_cleanup_hook(env, &Poller::OnEnvCleanup, this, &cleanup_);
  }

  ~Poller() override {
    RemoveCleanupHook();
    delete context_;
  }

 private:
  Napi::Value Start(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr && !active_) {
      uv_poll_start(handle_, UV_READABLE, OnReadable);
      active_ = true;
      busy.pollers.push_back(this);
      Ref();  // stay alive while the loop may call us
    }
    return info.Env().Undefined();
  }

  Napi::Value Stop(const Napi::CallbackInfo& info) {
    if (handle_ != nullptr && active_) {
      uv_poll_stop(handle_);
      active_ = false;
      Unbusy();
      Unref();
    }
    return info.Env().Undefined();
  }

  void Unbusy() {
    auto& v = busy.pollers;
    for (size_t i = 0; i < v.size(); i++)
      if (v[i] == this) {
        v.erase(v.begin() + static_cast<long>(i));
        break;
      }
  }

  // After a batch: drain every poller of this thread until `budgetUs` pass without a frame, and
  // for at most kSpinMaxUs in all, so that under load the loop still runs its timers and
  // messages. The list is read afresh on each step: a callback may stop or close pollers.
  static constexpr uint64_t kSpinMaxUs = 2000;
  static void Spin() {
    if (busy.spinning) return;
    busy.spinning = true;
    busy.spins++;
    uint64_t start = NowUs();
    uint64_t deadline = start + busy.budgetUs;
    uint64_t end = start + (busy.budgetUs > kSpinMaxUs ? busy.budgetUs : kSpinMaxUs);
    for (uint64_t now = start; busy.budgetUs > 0 && now < deadline && now < end; now = NowUs()) {
      bool any = false;
      for (size_t i = 0; i < busy.pollers.size(); i++) {
        int n = busy.pollers[i]->Drain(0);
        if (n > 0) {
          any = true;
          busy.polled += n;
        }
      }
      if (any) deadline = NowUs() + busy.budgetUs;
    }
    busy.spinning = false;
  }

  // Stops polling and releases the uv handle. The fd itself belongs to the caller.
  Napi::Value Close(const Napi::CallbackInfo& info) {
    Stop(info);
    if (handle_ != nullptr) {
      uv_close(reinterpret_cast<uv_handle_t*>(handle_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
      handle_ = nullptr;
    }
    RemoveCleanupHook();
    return info.Env().Undefined();
  }

  void RemoveCleanupHook() {
    if (cleanup_ != nullptr) {
      napi_remove_async_cleanup_hook(cleanup_);
      cleanup_ = nullptr;
    }
  }

  // The environment is going away: close the handle, and say we are done once libuv has.
  static void OnEnvCleanup(napi_async_cleanup_hook_handle hook, void* arg) {
    auto* self = static_cast<Poller*>(arg);
    self->cleanup_ = nullptr;
    uv_poll_t* h = self->handle_;
    if (h == nullptr) {
      napi_remove_async_cleanup_hook(hook);
      return;
    }
    self->handle_ = nullptr;
    if (self->active_) self->Unbusy();
    self->active_ = false;
    uv_poll_stop(h);
    h->data = hook;
    uv_close(reinterpret_cast<uv_handle_t*>(h), [](uv_handle_t* closed) {
      auto hk = static_cast<napi_async_cleanup_hook_handle>(closed->data);
      delete reinterpret_cast<uv_poll_t*>(closed);
      napi_remove_async_cleanup_hook(hk);
    });
  }

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* self = static_cast<Poller*>(handle->data);
    if (self->Drain(status) > 0 && busy.budgetUs > 0) Spin();
  }

  // Returns the frames read (or 0).
  int Drain(int status) {
    Napi::Env env = Env();
    Napi::HandleScope scope(env);
    int count = 0;
    int err = 0;
    if (status < 0) {
      err = -status;
    } else if (kind_ == 0) {
      count = DrainTap(&err);
    } else {
      count = DrainUdp(&err);
    }
    // A count of frames, or -errno when the fd failed before any frame was read.
    int result = count > 0 ? count : (err != 0 && err != EAGAIN ? -err : 0);
    if (result == 0) return 0;
    // The C calls, their status ignored: while a worker's environment is torn down (terminated,
    // or stopped by process.exit) JavaScript cannot run, and node-addon-api would turn the
    // refusal into a throw that aborts the process.
    napi_value arg;
    napi_value ignored;
    if (napi_create_double(env, result, &arg) != napi_ok) return 0;
    napi_make_callback(env, *context_, env.Global(), callback_.Value(), 1, &arg, &ignored);
    return count;
  }

  // Frame i's read buffers: its vnet header (if any), then its slot after the headroom.
  int TapIov(uint32_t i, iovec* iov) {
    int n = 0;
    if (meta_ != nullptr) iov[n++] = {meta_ + i * metaLen_, metaLen_};
    iov[n++] = {slab_ + static_cast<size_t>(i) * slotSize_ + headroom_, slotSize_ - headroom_};
    return n;
  }

  // Reads `batch` frames through the ring at once into slots 0.., frames packed to the front in
  // the order read (a frame read after one that found the queue empty moves down). Returns the
  // frames read; *err is EAGAIN once a read found the queue empty.
  uint32_t DrainTapRing(uint32_t batch, int* err) {
    int per = meta_ != nullptr ? 2 : 1;
    g_ring.Reserve(batch);
    for (uint32_t j = 0; j < batch; j++) TapIov(j, &g_ring.iovs[static_cast<size_t>(j) * per]);
    uint32_t ran = UringRun(false, fd_, g_ring.iovs.data(), per, batch, g_ring.res.data());
    uint32_t w = 0;
    for (uint32_t j = 0; j < ran; j++) {
      int32_t r = g_ring.res[j];
      if (r < 0) {
        if (*err == 0 || *err == EAGAIN) *err = -r;
        continue;
      }
      uint32_t len = static_cast<uint32_t>(r) - (meta_ != nullptr ? metaLen_ : 0);
      if (j != w) {
        memmove(slab_ + static_cast<size_t>(w) * slotSize_ + headroom_, slab_ + static_cast<size_t>(j) * slotSize_ + headroom_, len);
        if (meta_ != nullptr) memmove(meta_ + w * metaLen_, meta_ + j * metaLen_, metaLen_);
      }
      lengths_[w++] = len;
    }
    g_uring.reads += w;
    return w;
  }

  // A deep queue at the last drain: half that depth read through the ring at once (a read of an
  // empty queue costs more there than a readv, see kUringMinBatch), the rest with readv until
  // the queue is empty.
  int DrainTap(int* err) {
    uint32_t i = 0;
    uint32_t batch = depth_ / 2;
    if (batch >= kUringMinBatch && UringReady()) i = DrainTapRing(batch, err);
    for (; i < slots_ && *err == 0; i++) {
      iovec iov[2];
      ssize_t rc = readv(fd_, iov, TapIov(i, iov));
      if (rc < 0) {
        if (errno == EINTR) {
          i--;
          continue;
        }
        *err = errno;
        break;
      }
      lengths_[i] = static_cast<uint32_t>(rc) - (meta_ != nullptr ? metaLen_ : 0);
    }
    depth_ = i;
    return static_cast<int>(i);
  }

  // Reads up to vlen_ datagrams with one recvmmsg. Only the headers the last call filled are
  // reset (the kernel writes nothing else), so a call that brings one datagram costs the same
  // with 256 slots as with 8. vlen_ adapts to the sizes seen: as many datagrams as fit
  // kUdpBatchBytes (what 64 UDP_GRO receives of 64 KiB came to before the slots grew), at
  // least 64, at most every slot, 64 to begin with: small datagrams come 256 to a call,
  // coalesced ones 64 (one callback's work, and the wait of this thread's other fds, stays
  // bounded).
  int DrainUdp(int* err) {
    if (vlen_ == 0) vlen_ = std::min(slots_, 64u);  // until sizes are seen
    for (uint32_t i = 0; i < dirty_; i++) {
      iovec& iov = iovs_[i];
      iov.iov_base = slab_ + static_cast<size_t>(i) * slotSize_ + headroom_;
      iov.iov_len = slotSize_ - headroom_;
      mmsghdr& m = msgs_[i];
      memset(&m, 0, sizeof(m));
      m.msg_hdr.msg_iov = &iov;
      m.msg_hdr.msg_iovlen = 1;
      m.msg_hdr.msg_name = &names_[i];
      m.msg_hdr.msg_namelen = sizeof(sockaddr_storage);
      if (!controls_.empty()) {
        m.msg_hdr.msg_control = controls_[i].buf;
        m.msg_hdr.msg_controllen = sizeof(controls_[i].buf);
      }
    }
    dirty_ = 0;
    int n;
    do {
      n = recvmmsg(fd_, msgs_.data(), vlen_, MSG_DONTWAIT, nullptr);
    } while (n < 0 && errno == EINTR);
    if (n < 0) {
      *err = errno;
      return 0;
    }
    dirty_ = static_cast<uint32_t>(n);
    uint64_t bytes = 0;
    for (int i = 0; i < n; i++) bytes += msgs_[i].msg_len;
    uint64_t fit = kUdpBatchBytes / std::max<uint64_t>(bytes / std::max(n, 1), 1);
    uint64_t least = std::min(slots_, 64u);
    vlen_ = static_cast<uint32_t>(std::min<uint64_t>(slots_, std::max<uint64_t>(fit, least)));
    for (int i = 0; i < n; i++) {
      mmsghdr& m = msgs_[i];
      lengths_[i] = m.msg_len;
      if (segs_ != nullptr) segs_[i] = 0;
      if (tos_ != nullptr) tos_[i] = 0;
      if (!controls_.empty()) {
        for (cmsghdr* c = CMSG_FIRSTHDR(&m.msg_hdr); c != nullptr; c = CMSG_NXTHDR(&m.msg_hdr, c)) {
          if (c->cmsg_level == SOL_UDP && c->cmsg_type == UDP_GRO && segs_ != nullptr) {
            int gso = 0;
            memcpy(&gso, CMSG_DATA(c), sizeof(gso));
            segs_[i] = static_cast<uint32_t>(gso);
          } else if (c->cmsg_level == IPPROTO_IP && c->cmsg_type == IP_TOS && tos_ != nullptr) {
            tos_[i] = *CMSG_DATA(c);  // one byte
          } else if (c->cmsg_level == IPPROTO_IPV6 && c->cmsg_type == IPV6_TCLASS && tos_ != nullptr) {
            int tc = 0;
            memcpy(&tc, CMSG_DATA(c), sizeof(tc));
            tos_[i] = static_cast<uint8_t>(tc);
          }
        }
      }
      if (addrs_ != nullptr) {
        uint8_t* slot = addrs_ + i * kAddrLen;
        SockaddrToSlot(&names_[i], slot);
        slot[1] = (m.msg_hdr.msg_flags & MSG_TRUNC) ? kAddrTruncated : 0;
      }
    }
    return n;
  }

  int kind_ = 0;
  int fd_ = -1;
  uint32_t depth_ = 0;  // TAP: the frames the last drain read
  uint32_t slotSize_ = 0, headroom_ = 0, slots_ = 0, metaLen_ = 0;
  // UDP: datagrams the next recvmmsg asks for (0: not yet set), and the leading slots whose
  // headers the last one filled (every slot before the first call).
  uint32_t vlen_ = 0, dirty_ = 0;
  static constexpr uint64_t kUdpBatchBytes = 64u * 65536u;
  uint8_t* slab_ = nullptr;
  uint32_t* lengths_ = nullptr;
  uint8_t* addrs_ = nullptr;
  uint8_t* meta_ = nullptr;
  uint32_t* segs_ = nullptr;
  uint8_t* tos_ = nullptr;
  struct GroControl {
    alignas(cmsghdr) char buf[2 * CMSG_SPACE(sizeof(int))];
  };
  std::vector<GroControl> controls_;
  Napi::ObjectReference slabRef_, lengthsRef_, addrsRef_, metaRef_, segsRef_, tosRef_;
  Napi::FunctionReference callback_;
  Napi::AsyncContext* context_ = nullptr;
  uv_poll_t* handle_ = nullptr;
  napi_async_cleanup_hook_handle cleanup_ = nullptr;
  bool active_ = false;
  std::vector<mmsghdr> msgs_;
  std::vector<iovec> iovs_;
  std::vector<sockaddr_storage> names_;
};

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  struct Entry {
    const char* name;
    Napi::Value (*fn)(const Napi::CallbackInfo&);
  };
  static const Entry table[] = {
      {"tapOpen", TapOpen},       {"tapSetPersist", TapSetPersist}, {"tapSetOffload", TapSetOffload},
      {"ifSetMtu", IfSetMtu},     {"ifSetMac", IfSetMac},           {"ifGetMac", IfGetMac},
      {"ifSetUp", IfSetUp},       {"udpOpen", UdpOpen},             {"rawUdpOpen", RawUdpOpen},
      {"rawUdpConnectSelf", RawUdpConnectSelf},
      {"sendBatch", SendBatch},   {"writeBatch", WriteBatch},       {"closeFd", CloseFd},
      {"errnoName", ErrnoNameJs}, {"lastErrno", LastErrno},     {"sdNotify", SdNotify},
      {"socketDrops", SocketDrops}, {"sendGso", SendGso},     {"sendBatchPool", SendBatchPool},
      {"copyBytes", CopyBytes},   {"copySum", CopySum},       {"copySegments", CopySegments},
      {"peerCred", PeerCred},
      {"bridgeAddIf", BridgeAddIf}, {"pathMtu", PathMtu},   {"mcastIf", McastIf},
      {"linkGroupDelete", LinkGroupDelete}, {"qdiscRoot", QdiscRoot},
      {"mcastMembership", McastMembership}, {"setBusyPoll", SetBusyPoll},
      {"busyPollStats", BusyPollStats}, {"setTapIo", SetTapIo}, {"tapIoStats", TapIoStats},
  };
  for (const Entry& e : table) exports.Set(e.name, Napi::Function::New(env, e.fn, e.name));
  exports.Set("Poller", Poller::Init(env));
  exports.Set("ADDR_LEN", Napi::Number::New(env, kAddrLen));
  exports.Set("VNET_HDR_LEN", Napi::Number::New(env, kVnetHdrLen));
  return exports;
}

}  // namespace

NODE_API_MODULE(vtep_io, Init)
