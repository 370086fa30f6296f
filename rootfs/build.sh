#!/usr/bin/env bash
# Build podrun's example images offline from the host's packages and import them:
#
#   rootfs/build.sh [--force] [IMAGE...]      IMAGE: debug, python or a full name (default: all)
#
#   podrun.local/debug:1            busybox + curl + iproute2 (ip, ss), for curl-client
#   podrun.local/python:3.11-slim   python3.11 + the stdlib a small server needs, for web-server
#
# Each recipe (rootfs/<name>.sh) stages a root filesystem in a temporary directory, checks it with
# chroot (in throwaway namespaces, no podrun involved) and imports it with `podrun image import`.
# An image already imported with the same recipe hash (recipe files + digests of the host
# programs used) is skipped unless --force. Uses $PODRUN (default target/debug/podrun) and
# podrun's image root ($PODRUN_IMAGE_ROOT, default /var/lib/podrun/images). Run as root.
set -euo pipefail
ROOTFS_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$ROOTFS_DIR")
export ROOTFS_DIR
PODRUN=${PODRUN:-$REPO/target/debug/podrun}
RECIPES=(debug python)

usage() {
    sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}

force=0
wanted=()
for arg in "$@"; do
    case $arg in
    -f | --force) force=1 ;;
    -h | --help) usage 0 ;;
    -*) echo "unknown option $arg" >&2; usage 2 ;;
    *) wanted+=("$arg") ;;
    esac
done

[ "$(id -u)" = 0 ] || { echo "rootfs/build.sh: run as root (files owned by root, chroot checks)" >&2; exit 1; }
[ -x "$PODRUN" ] || { echo "rootfs/build.sh: no podrun at $PODRUN (cargo build, or set PODRUN)" >&2; exit 1; }

# recipe_for WORD: the recipe a command-line word names.
recipe_for() {
    local recipe image
    for recipe in "${RECIPES[@]}"; do
        image=$(sed -n 's/^IMAGE=//p' "$ROOTFS_DIR/$recipe.sh")
        if [ "$1" = "$recipe" ] || [ "$1" = "$image" ]; then
            echo "$recipe"
            return 0
        fi
    done
    echo "rootfs/build.sh: no recipe for image \"$1\"; known: ${RECIPES[*]}" >&2
    return 1
}

selected=()
if ((${#wanted[@]} == 0)); then
    selected=("${RECIPES[@]}")
else
    for word in "${wanted[@]}"; do
        selected+=("$(recipe_for "$word")")
    done
fi

# build_one RECIPE: in a subshell, so recipes cannot see each other's variables.
build_one() (
    local recipe=$1 input hash stage
    # shellcheck source=rootfs/lib.sh
    source "$ROOTFS_DIR/lib.sh"
    # shellcheck source=/dev/null
    source "$ROOTFS_DIR/$recipe.sh"
    inputs=$(recipe_inputs)
    hash=$(
        {
            cat "$ROOTFS_DIR/lib.sh" "$ROOTFS_DIR/$recipe.sh"
            while read -r input; do
                if [ -f "$input" ]; then sha256sum "$input"; else echo "$input"; fi
            done <<<"$inputs"
        } | sha256sum | cut -c1-16
    )
    # shellcheck disable=SC2153 # IMAGE comes from the recipe
    current=$("$PODRUN" image inspect "$IMAGE" 2>/dev/null || true)
    if [ "$force" = 0 ] && [[ $current == *"\"org.podrun.recipe-hash\": \"$hash\""* ]]; then
        echo "== $IMAGE: up to date (recipe $hash)"
        return 0
    fi
    echo "== $IMAGE: building (recipe $hash)"
    stage=$(mktemp -d "${TMPDIR:-/tmp}/podrun-rootfs-$recipe.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    recipe_build "$stage/rootfs"
    echo "-- checking $IMAGE with chroot"
    recipe_check "$stage/rootfs"
    args=()
    for change in "${CHANGES[@]}"; do
        args+=(--change "$change")
    done
    args+=(--change "LABEL org.podrun.recipe-hash=$hash")
    old=$("$PODRUN" images -q --no-trunc "$IMAGE" 2>/dev/null || true)
    id=$("$PODRUN" image import "$stage/rootfs" "$IMAGE" "${args[@]}")
    # The image this one replaces, now untagged, goes (unless it kept another name).
    if [ -n "$old" ] && [ "$old" != "sha256:$id" ] &&
        [[ $("$PODRUN" image inspect "$old" | tr -d ' \n') == *'"RepoTags":[]'* ]]; then
        "$PODRUN" image rm "$old" >/dev/null
    fi
    echo "-- imported $IMAGE as ${id:0:12}: $(du -sh --apparent-size "$stage/rootfs" | cut -f1) in $(find "$stage/rootfs" | wc -l) files"
)

for recipe in "${selected[@]}"; do
    build_one "$recipe"
done
echo
"$PODRUN" images | sed -n '1p;/^podrun\.local\//p'
