#!/bin/bash
# The shell way, for comparison with `cargo bench --bench pod_lifecycle`: the sidecar pod's
# network made with `ip` (netns, bridge, veth, addresses, routes) and its web server started with
# `ip netns exec`, from nothing until it answers on the pod IP; then the teardown. No cgroups,
# no images, no second container: a lower bound of the manual steps, as in the tutorials.
#
#   sudo benches/shell-way.sh [RUNS]      (default 20; prints medians in ms)
#
# Runs inside its own throwaway network and mount namespace: nothing touches the host.
set -euo pipefail
if [ "${1:-}" != "--inside" ]; then
    exec unshare --net --mount --propagation private "$0" --inside "${1:-20}"
fi
RUNS=$2
mount -t tmpfs tmpfs /run/netns 2>/dev/null || { mkdir -p /run/netns && mount -t tmpfs tmpfs /run/netns; }
mount -t sysfs sysfs /sys
ip link set lo up
REPO=$(cd "$(dirname "$0")/.." && pwd)
# The web server's command from pods/sidecar.yaml (python -S -u -c SCRIPT).
SCRIPT=$(python3 -c '
import re, sys
text = open(sys.argv[1]).read()
block = text.split("    - |\n", 1)[1].split("    env:", 1)[0]
print("\n".join(l[6:] for l in block.splitlines()))' "$REPO/pods/sidecar.yaml")
PY=/usr/bin/python3

now() { date +%s%N; }
up=() down=() web=()
for i in $(seq "$RUNS"); do
    sleep 0.2
    t0=$(now)
    ip link add shbr0 type bridge
    ip addr add 10.250.0.1/24 dev shbr0
    ip link set shbr0 up
    ip netns add shpod
    ip link add shveth type veth peer name eth0 netns shpod
    ip link set shveth master shbr0 up
    ip -n shpod link set lo up
    ip -n shpod addr add 10.250.0.2/24 dev eth0
    ip -n shpod link set eth0 up
    ip -n shpod route add default via 10.250.0.1
    t1=$(now)
    POD_IP=10.250.0.2 HOSTNAME=shpod ip netns exec shpod "$PY" -S -u -c "$SCRIPT" >/dev/null 2>&1 &
    server=$!
    until curl -s -o /dev/null --max-time 0.2 http://10.250.0.2:80/; do sleep 0.0005; done
    t2=$(now)
    kill "$server"; wait "$server" 2>/dev/null || true
    t3=$(now)
    ip netns del shpod
    ip link del shbr0
    while [ -e /sys/class/net/shveth ]; do sleep 0.0005; done
    t4=$(now)
    up+=($(( (t1 - t0) / 1000 ))) web+=($(( (t2 - t0) / 1000 ))) down+=($(( (t4 - t3) / 1000 )))
done
median() { printf '%s\n' "$@" | sort -n | awk '{a[NR]=$1} END {printf "%.2f", a[int((NR+1)/2)]/1000}'; }
echo "shell way, $RUNS runs, medians (ms):"
echo "  network made with ip (netns, bridge, veth, addresses, route): $(median "${up[@]}")"
echo "  start -> web server answers on the pod IP:                   $(median "${web[@]}")"
echo "  teardown (ip netns del, ip link del bridge, veth gone):       $(median "${down[@]}")"
