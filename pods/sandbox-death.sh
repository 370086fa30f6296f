#!/usr/bin/env bash
# Sandbox death, as the kubelet handles it: apply the sidecar pod, kill -9 its pause process,
# and watch podrun kill both containers, tear down the old network (veth, IP), make a new
# sandbox (new pause, new namespaces, new veth and maybe a new IP) and start the containers
# again with their restart counts + 1. Shown with podrun and with plain Linux tools.
#
#   pods/sandbox-death.sh (as root)       (after scripts/sidecar-demo.sh, or with podrun built)
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (from a user account: sudo $0)"; exit 1; }
if ! command -v podrun >/dev/null; then
    for p in target/release target/debug; do [ -x "$p/podrun" ] && PATH="$PWD/$p:$PATH" && break; done
fi
command -v podrun >/dev/null || { echo "build podrun first: scripts/sidecar-demo.sh or cargo build --bins"; exit 1; }

field() { # field POD PYTHON-EXPR-ON-INSPECT-JSON
    podrun inspect "$1" | python3 -c "import json,sys; d=json.load(sys.stdin); print($2)"
}
show() {
    echo "--- $1"
    echo "pause pid:      $(field sidecar 'd["sandbox"]["pause"]["pid"]')"
    echo "net namespace:  $(field sidecar 'd["sandbox"]["pause"]["namespaces"]["net"]')"
    echo "host veth:      $(field sidecar '"%s ifindex %s" % (d["sandbox"]["hostVeth"], d["sandbox"]["network"]["host_ifindex"])')"
    echo "pod IP:         $(field sidecar 'd["sandbox"]["network"]["ip"]')"
    echo "containers:     $(field sidecar '", ".join("%s pid %s restarts %s" % (c["name"], c["pid"], c["restartCount"]) for c in d["containers"])')"
}

podrun delete sidecar --now --ignore-not-found >/dev/null 2>&1 || true
podrun apply -f pods/sidecar.yaml >/dev/null
sleep 0.5
show "before"
OLD_IFINDEX=$(field sidecar 'd["sandbox"]["network"]["host_ifindex"]')
PAUSE=$(field sidecar 'd["sandbox"]["pause"]["pid"]')
SUPERVISOR=$(field sidecar 'd["supervisor"]["pid"]')
echo
echo "\$ ps --forest -g $SUPERVISOR -o pid,ppid,cmd"
ps --forest -g "$SUPERVISOR" -o pid,ppid,cmd
echo
echo "\$ kill -9 $PAUSE    # the pause holds the pod's namespaces: the sandbox is dead"
kill -9 "$PAUSE"
for _ in $(seq 50); do
    NEW=$(field sidecar 'd["sandbox"]["pause"]["pid"] if d["sandbox"]["ready"] else 0' 2>/dev/null || echo 0)
    [ "$NEW" != 0 ] && [ "$NEW" != "$PAUSE" ] && break
    sleep 0.1
done
sleep 0.5
echo
show "after"
echo
echo "\$ ip -o link | grep '^$OLD_IFINDEX:'    # the old veth (same name, new pair) is gone"
ip -o link | grep "^$OLD_IFINDEX:" || echo "(no link with ifindex $OLD_IFINDEX)"
echo "\$ bridge link show    # the new veth is on the bridge"
bridge link show
echo "\$ ip netns exec sidecar ip -br addr"
ip netns exec sidecar ip -br addr
echo "\$ ps --forest -g $SUPERVISOR -o pid,ppid,cmd"
ps --forest -g "$SUPERVISOR" -o pid,ppid,cmd
echo
echo "\$ podrun describe pod sidecar    # the events, in order"
podrun describe pod sidecar | sed -n '/^Events:/,$p'
echo
echo "\$ podrun get pods"
podrun get pods
IP=$(field sidecar 'd["sandbox"]["network"]["ip"]')
echo "\$ podrun exec sidecar -c curl-client -- curl -s http://127.0.0.1:80/"
podrun exec sidecar -c curl-client -- curl -s --max-time 2 http://127.0.0.1:80/ || true
echo
echo "The pod lives on in a new sandbox at $IP. Remove it with: podrun delete sidecar"
