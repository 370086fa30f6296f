#!/usr/bin/env bash
# One command from a fresh Debian/Ubuntu VM to a running sidecar pod:
# installs what is missing, builds podrun, installs it to /usr/local/bin, builds the example
# images when missing (rootfs/build.sh), applies pods/sidecar.yaml and shows the pod from
# podrun's side and from plain Linux tools.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] || { echo "run as root (from a user account: sudo $0)"; exit 1; }
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release --bins
install -m 0755 target/release/podrun target/release/podrun-pause target/release/podrun-init /usr/local/bin/
PODRUN=/usr/local/bin/podrun rootfs/build.sh
podrun delete sidecar --now --ignore-not-found >/dev/null 2>&1 || true
set -x
podrun apply -f pods/sidecar.yaml
podrun get pods -o wide
IP=$(podrun get pod sidecar -o json | python3 -c 'import json,sys; print(json.load(sys.stdin)["status"]["podIP"])')
for _ in $(seq 50); do curl -s --max-time 1 "http://$IP/hello" && break; sleep 0.1; done
podrun exec sidecar -c curl-client -- curl -s http://127.0.0.1:80/
podrun exec sidecar -c curl-client -- cat /etc/hosts /etc/os-release
podrun exec sidecar -c curl-client -- ps
podrun exec sidecar -c curl-client -- grep CapEff /proc/1/status
ip netns exec sidecar ip -br addr
bridge link show
nft list table inet podrun
ps --forest -o pid,ppid,cmd -g "$(podrun inspect sidecar | python3 -c 'import json,sys; print(json.load(sys.stdin)["supervisor"]["pid"])')"
set +x
echo
echo "The sidecar pod is running. Explore it (see README 'A tour'), then: podrun delete sidecar"
