#!/usr/bin/env bash
# The test suite: unit tests, and (as root) the integration tests, each on its own throwaway
# network+mount namespace. Run as root for the real thing; non-root runs skip kernel tests.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/install-deps.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --bins
cargo test "$@"
