#!/usr/bin/env bash
# The test suite: unit tests, and (as root) the integration tests, each on its own throwaway
# network+mount namespace and cgroup parent; then the cgroup v2 tests inside a cgroup v2 VM
# (tests/vm/run; set PODRUN_SKIP_VM=1 to skip it, PODRUN_VM_TESTS to choose its test targets).
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --bins
cargo test "$@"
if [ "$(id -u)" = 0 ] && [ "${PODRUN_SKIP_VM:-0}" != 1 ]; then
    # shellcheck disable=SC2086
    tests/vm/run ${PODRUN_VM_TESTS:-cgroup_v2 pod_cgroups}
fi
