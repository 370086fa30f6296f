# shellcheck shell=bash disable=SC2034  # IMAGE, CHANGES and the functions are used by build.sh
# Recipe: podrun.local/debug:1, a small debug image: dash as /bin/sh, busybox for the rest (ls,
# cat, ps, ping, sleep, nc, wget, vi, ...), curl, and iproute2's ip and ss, with only the shared
# libraries ldd lists. Not busybox's sh: Debian's static busybox shell runs its own applets
# before PATH, so `ip` in a script would be busybox's, not iproute2's.
# Sourced by rootfs/build.sh, which calls recipe_inputs, recipe_build and recipe_check.

IMAGE=podrun.local/debug:1
CHANGES=(
    'CMD ["/bin/sh"]'
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'LABEL org.opencontainers.image.title="podrun debug" org.opencontainers.image.description="busybox, curl, iproute2"'
)

# The host programs the image is made of (their digests are part of the recipe hash).
recipe_inputs() {
    local cmd path
    for cmd in dash busybox curl ip ss; do
        path=$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v "$cmd") ||
            { echo "debug image: $cmd not found on the host (apt-get install busybox-static curl iproute2)" >&2; return 1; }
        readlink -f "$path"
    done
}

recipe_build() {
    local r=$1
    stage_layout "$r"
    # Real programs first: busybox's own ip must not shadow them.
    add_binary "$r" "$(readlink -f "$(PATH=/usr/bin:/bin command -v curl)")" /usr/bin/curl
    add_binary "$r" "$(readlink -f "$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v ip)")" /usr/bin/ip
    add_binary "$r" "$(readlink -f "$(PATH=/usr/sbin:/usr/bin:/sbin:/bin command -v ss)")" /usr/bin/ss
    add_shell_and_tools "$r"
    write_etc "$r" "podrun debug image 1 (busybox, curl, iproute2)" podrun-debug
    finish "$r"
}

recipe_check() {
    local r=$1
    # shellcheck disable=SC2016 # expanded by the image's shell
    in_chroot "$r" /bin/sh -c '
        set -e
        curl --version | head -1
        ip -V
        ss -V
        ping -c 1 -W 1 127.0.0.1 >/dev/null && echo "ping: ok"
        ps -o pid,comm | head -3
        cat /etc/os-release | head -1
        for c in cat ls sleep grep sed awk wget nc vi; do command -v $c >/dev/null; done
        ip -br link show lo
    '
}
