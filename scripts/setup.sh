#!/usr/bin/env bash
# Set up a Debian 12 machine for vtep (as root): the Debian packages of the real peers the tests
# and the lab drive (Open vSwitch, kernel VXLAN via iproute2, tshark, libvirt clients) and the
# toolchain of the N-API addon, then the npm packages (which builds the addon). Idempotent and
# quick when everything is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

debs=(openvswitch-switch openvswitch-vtep ovn-central ovn-host ovn-controller-vtep tshark iperf3 ethtool iproute2 tcpdump libvirt-clients
  virtinst python3-scapy iputils-ping systemd g++ make python3 prometheus man-db frr gobgpd golang-github-osrg-gobgp-dev sockperf liburing-dev linux-perf)
missing=()
for p in "${debs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q '^install ok installed$' || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing Debian packages: ${missing[*]}"
  apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
else
  echo "setup: Debian packages already installed"
fi

node --version
npm ci
