import { readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { isIPv4, isIPv6 } from 'node:net';
import { endianness } from 'node:os';
import { remoteKey } from '../fdb/remote.js';

/**
 * Who else holds our UDP port. The kernel spreads a port's datagrams over every socket in its
 * SO_REUSEPORT group, and any socket of the same user may join that group: a second vtep on
 * the same `local:port` would silently take a share of the flows. Kernel VXLAN refuses such a
 * port (EADDRINUSE) and Open vSwitch owns its own; we look instead. `/proc/net/udp{,6}` lists
 * this network namespace's UDP sockets with their inode and owner; `/proc/PID/fd` tells whose
 * a socket inode is (when we may read it: as root, any process).
 */
export interface PortHolder {
  /** Socket inode (0: a kernel socket, a VXLAN device's, say). */
  inode: number;
  uid: number;
  address: string;
  port: number;
  pid?: number;
  command?: string;
}

/** The sockets of this namespace bound to `port` on an address that overlaps `address`. */
export function udpHolders(address: string, port: number): PortHolder[] {
  const v6 = isIPv6(address);
  let text: string;
  try {
    text = readFileSync(v6 ? '/proc/net/udp6' : '/proc/net/udp', 'utf8');
  } catch {
    return []; // no procfs: nothing to say
  }
  const want = normal(address);
  const any = v6 ? '::' : '0.0.0.0';
  const out: PortHolder[] = [];
  for (const line of text.split('\n').slice(1)) {
    const f = line.trim().split(/\s+/);
    if (f.length < 10) continue;
    const [hexAddr, hexPort] = f[1].split(':');
    if (parseInt(hexPort, 16) !== port) continue;
    const addr = procAddress(hexAddr);
    // A wildcard bind on either side takes the other's datagrams (or refuses its bind).
    if (addr !== want && addr !== any && want !== any) continue;
    out.push({ inode: Number(f[9]), uid: Number(f[7]), address: addr, port });
  }
  return out;
}

/** The inodes of this process's sockets (every thread's: file descriptors are per process). */
export function ownSocketInodes(): Set<number> {
  return socketInodes('self');
}

/** Fill in `pid` and `command` of each holder, where /proc lets us read them. */
export function whose(holders: PortHolder[]): PortHolder[] {
  const wanted = new Map(holders.filter((h) => h.inode > 0).map((h) => [h.inode, h]));
  if (wanted.size === 0) return holders;
  let pids: string[] = [];
  try {
    pids = readdirSync('/proc').filter((p) => /^\d+$/.test(p));
  } catch {
    return holders;
  }
  for (const pid of pids) {
    for (const ino of socketInodes(pid)) {
      const h = wanted.get(ino);
      if (!h || h.pid !== undefined) continue;
      h.pid = Number(pid);
      h.command = processCommand(pid);
    }
  }
  return holders;
}

/** "pid 123 (vtep run --local …), uid 0", or what is known of a socket we cannot attribute. */
export function describeHolder(h: PortHolder): string {
  if (h.inode === 0) return `a kernel socket on ${remoteKey(h.address, h.port)} (a VXLAN device?)`;
  if (h.pid === undefined) return `socket inode ${h.inode} of uid ${h.uid} (process not readable)`;
  return `pid ${h.pid} (${h.command ?? '?'}), uid ${h.uid}`;
}

function socketInodes(pid: string): Set<number> {
  const out = new Set<number>();
  let fds: string[];
  try {
    fds = readdirSync(`/proc/${pid}/fd`);
  } catch {
    return out; // gone, or not ours to read
  }
  for (const fd of fds) {
    try {
      const m = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
      if (m) out.add(Number(m[1]));
    } catch {
      // closed meanwhile
    }
  }
  return out;
}

/** A process's command line, shortened (`vtep run --local …` for ours); undefined if unreadable. */
export function processCommand(pid: number | string): string | undefined {
  try {
    const argv = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').filter(Boolean);
    // node and its own options first: name the script and its arguments (which vtep it is)
    let shown = argv;
    if (/(^|\/)node$/.test(argv[0])) {
      const script = argv.findIndex((a, i) => i > 0 && !a.startsWith('-'));
      if (script > 0) shown = argv.slice(script);
    }
    // programs by name (python3, not /root/.pyenv/…/python3); our own CLI as `vtep`
    shown[0] = /(^|\/)(dist\/src\/cli\/main\.js|vtep)$/.test(shown[0])
      ? 'vtep'
      : shown[0].replace(/^.*\//, '');
    const text = shown.join(' ');
    return text.length > 120 ? `${text.slice(0, 117)}...` : text;
  } catch {
    return undefined;
  }
}

/** `0100007F` (IPv4) or 32 hex digits (IPv6), four host-order 32-bit words as the kernel prints. */
function procAddress(hex: string): string {
  const words = hex.length === 8 ? 1 : 4;
  const b = Buffer.alloc(words * 4);
  for (let i = 0; i < words; i++) {
    const w = parseInt(hex.slice(i * 8, i * 8 + 8), 16);
    if (endianness() === 'LE') b.writeUInt32LE(w, i * 4);
    else b.writeUInt32BE(w, i * 4);
  }
  if (words === 1) return [...b].join('.');
  return normal(Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16)).join(':'));
}

/** One spelling per address, for comparison (`::ffff:…` and zero runs folded by URL parsing). */
function normal(address: string): string {
  if (isIPv4(address)) return address;
  try {
    return new URL(`http://[${address}]/`).hostname.slice(1, -1);
  } catch {
    return address;
  }
}
