#!/usr/bin/env bash
# Install what podrun needs to build, run and test on Debian/Ubuntu (idempotent).
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive
need=()
for pkg_cmd in nftables:nft iproute2:ip curl:curl python3:python3 procps:pgrep util-linux:nsenter gcc:gcc busybox-static:busybox docker-registry:docker-registry skopeo:skopeo; do
    pkg=${pkg_cmd%%:*} cmd=${pkg_cmd##*:}
    command -v "$cmd" >/dev/null 2>&1 || need+=("$pkg")
done
if ((${#need[@]})); then
    echo "installing: ${need[*]}"
    apt-get update -qq
    apt-get install -y -qq "${need[@]}" >/dev/null
fi
if ! command -v cargo >/dev/null 2>&1; then
    if [ -x "$HOME/.cargo/bin/cargo" ]; then
        export PATH="$HOME/.cargo/bin:$PATH"
    else
        echo "installing the Rust toolchain (rustup)"
        apt-get install -y -qq rustup >/dev/null 2>&1 || curl -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal
        export PATH="$HOME/.cargo/bin:$PATH"
        rustup default stable >/dev/null 2>&1 || true
    fi
fi
# The Kubernetes Python client: a second real client of `podrun serve` in the tests.
if ! python3 -c 'import kubernetes' >/dev/null 2>&1; then
    echo "installing: the Kubernetes Python client"
    python3 -m pip install -q kubernetes >/dev/null 2>&1 ||
        { apt-get install -y -qq python3-kubernetes >/dev/null; }
fi
