#!/usr/bin/env bash
# Build podrun's test images and import them into the image store DIR (default
# /var/lib/podrun/images) with `podrun image import` ($PODRUN, default target/debug/podrun),
# from binaries of this machine:
#   podrun.local/debug:1            busybox (static) + curl + ip, with their libraries
#   podrun.local/python:3.11-slim   the same plus python3 and its standard library
# The staging trees hard-link the host's files (same filesystem), the import copies them.
# Needs busybox-static (scripts/install-deps.sh). rootfs/build.sh makes the slimmer demo images.
set -euo pipefail
dir=${1:-/var/lib/podrun/images}
busybox=$(command -v busybox)
tmp=$(mktemp -d "${dir%/}.tmp.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

copy() { # copy host file $1 into rootfs $2 at the same path (hard link when possible)
    local src=$1 root=$2
    mkdir -p "$root$(dirname "$src")"
    cp -aL --link "$src" "$root$src" 2>/dev/null || cp -aL "$src" "$root$src"
}

with_libs() { # a binary and every library ldd lists for it, plus the loader
    local bin=$1 root=$2
    copy "$bin" "$root"
    ldd "$bin" 2>/dev/null | grep -o '/[^ ]*' | while read -r lib; do copy "$lib" "$root"; done
}

base() { # root: busybox with its applets, /etc files, users
    local root=$1 marker=$2
    mkdir -p "$root"/{bin,sbin,usr/bin,usr/sbin,etc,tmp,root,home/app,proc,sys,dev,var/tmp}
    chmod 1777 "$root/tmp" "$root/var/tmp"
    cp "$busybox" "$root/bin/busybox"
    for applet in $("$busybox" --list-full); do
        [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
    done
    printf 'root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
    printf 'root:x:0:\napp:x:1000:\nnogroup:x:65534:\n' >"$root/etc/group"
    echo "$marker" >"$root/etc/podrun-image"
    with_libs "$(command -v curl)" "$root"
    rm -f "$root/sbin/ip" "$root/bin/ip"
    with_libs /usr/sbin/ip "$root"
    # Rust test programs (the gRPC health server of the probe tests) need libgcc_s.
    copy "$(readlink -f "$(gcc -print-file-name=libgcc_s.so.1)")" "$root"
    # curl needs CA certificates only for https; the tests use http.
}

debug="$tmp/podrun.local/debug:1"
base "$debug/rootfs" "podrun.local/debug:1"

python="$tmp/podrun.local/python:3.11-slim"
base "$python/rootfs" "podrun.local/python:3.11-slim"
with_libs /usr/bin/python3.11 "$python/rootfs"
ln -sf python3.11 "$python/rootfs/usr/bin/python3"
mkdir -p "$python/rootfs/usr/lib"
cp -a --link /usr/lib/python3.11 "$python/rootfs/usr/lib/" 2>/dev/null || cp -a /usr/lib/python3.11 "$python/rootfs/usr/lib/"

podrun=${PODRUN:-$(dirname "$0")/../target/debug/podrun}
import_image() { # import REF CHANGE...: the staged rootfs of REF into the store
    local ref=$1
    shift
    local changes=()
    for c in "$@"; do changes+=(--change "$c"); done
    "$podrun" --image-root "$dir" image import "$tmp/$ref/rootfs" "$ref" "${changes[@]}" >/dev/null
}
import_image "podrun.local/debug:1" 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' 'CMD ["sh"]'
import_image "podrun.local/python:3.11-slim" \
    'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' 'ENV LANG=C.UTF-8' 'CMD ["python3"]'
echo "images in $dir: podrun.local/debug:1 podrun.local/python:3.11-slim"
