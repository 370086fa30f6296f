# shellcheck shell=bash
# Helpers for the image recipes (sourced by rootfs/build.sh).
#
# Images use the merged-/usr layout (/bin -> usr/bin, /lib -> usr/lib, /lib64 -> usr/lib64,
# /sbin -> usr/sbin), so a host file goes to the same path with /usr in front when it has none:
# /lib/x86_64-linux-gnu/libc.so.6 -> /usr/lib/x86_64-linux-gnu/libc.so.6, which the image's
# /lib link makes reachable at the host path too. Libraries are found by glibc's built-in
# multiarch search path (an image has no ld.so.cache).

# image_path HOSTPATH: where a host file goes in the image.
image_path() {
    case $1 in
    /usr/*) printf '%s\n' "$1" ;;
    *) printf '/usr%s\n' "$1" ;;
    esac
}

# stage_layout ROOT: the skeleton every image has, mount points included.
stage_layout() {
    local r=$1
    mkdir -p "$r"/usr/bin "$r"/usr/sbin "$r"/usr/lib "$r"/usr/lib64 "$r"/usr/local/bin \
        "$r"/proc "$r"/dev "$r"/sys "$r"/etc "$r"/root "$r"/tmp "$r"/run "$r"/var/tmp "$r"/home
    ln -s usr/bin "$r/bin"
    ln -s usr/sbin "$r/sbin"
    ln -s usr/lib "$r/lib"
    ln -s usr/lib64 "$r/lib64"
    chmod 0755 "$r"
    chmod 1777 "$r/tmp" "$r/var/tmp"
    chmod 0700 "$r/root"
}

# add_file ROOT HOSTPATH [IMAGEPATH]: copy one file (symlinks followed), keeping mode and mtime.
add_file() {
    local dst
    dst=$1$(image_path "${3:-$2}")
    [ -e "$dst" ] && return 0
    mkdir -p "$(dirname "$dst")"
    cp -L --preserve=mode,timestamps "$2" "$dst"
}

# libraries_of FILE: the shared libraries (and loader) ldd says FILE needs, one per line.
libraries_of() {
    { ldd "$1" 2>/dev/null || true; } | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
}

# add_binary ROOT HOSTPATH [IMAGEPATH]: a program and every shared library it needs.
add_binary() {
    local lib
    add_file "$1" "$2" "${3:-$2}"
    for lib in $(libraries_of "$2"); do
        add_file "$1" "$lib"
    done
}

# add_shell_and_tools ROOT: dash as /bin/sh and busybox for the tools a slim image has (ls, cat,
# cp, mkdir, rm, sed, grep, ps, sleep, env, ...). Not busybox's sh: Debian's static busybox shell
# runs its own applets before PATH (its `ip` would shadow iproute2's). Real programs added before
# this call keep their names; busybox fills in the rest.
add_shell_and_tools() {
    local r=$1 applet
    add_binary "$r" "$(readlink -f "$(PATH=/usr/bin:/bin command -v dash)")" /usr/bin/dash
    ln -s dash "$r/usr/bin/sh"
    add_binary "$r" "$(readlink -f "$(PATH=/usr/bin:/bin command -v busybox)")" /usr/bin/busybox
    for applet in $("$r/usr/bin/busybox" --list); do
        [ -e "$r/usr/bin/$applet" ] || [ -L "$r/usr/bin/$applet" ] || ln -s busybox "$r/usr/bin/$applet"
    done
}

# write_etc ROOT PRETTY_NAME ID: users, groups, name service, hosts and an os-release marker.
write_etc() {
    local r=$1
    cat >"$r/etc/passwd" <<'EOF'
root:x:0:0:root:/root:/bin/sh
nobody:x:65534:65534:nobody:/nonexistent:/bin/false
EOF
    cat >"$r/etc/group" <<'EOF'
root:x:0:
nogroup:x:65534:
EOF
    printf 'hosts: files dns\npasswd: files\ngroup: files\n' >"$r/etc/nsswitch.conf"
    printf '127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n' >"$r/etc/hosts"
    cat >"$r/etc/os-release" <<EOF
PRETTY_NAME="$2"
NAME="podrun image"
ID=$3
ID_LIKE=debian
VARIANT="built by podrun's rootfs/build.sh from the host's packages"
EOF
    chmod 0644 "$r"/etc/passwd "$r"/etc/group "$r"/etc/nsswitch.conf "$r"/etc/hosts "$r"/etc/os-release
}

# finish ROOT: everything owned by root.
finish() {
    chown -R -h 0:0 "$1"
}

# in_chroot ROOT CMD...: run CMD in the image without podrun, in private mount, PID and network
# namespaces with /proc and a /dev holding only null mounted (gone with the namespaces when CMD
# exits) and lo up.
in_chroot() {
    local r=$1
    shift
    # shellcheck disable=SC2016 # expanded by the inner sh
    unshare --mount --pid --net --fork --mount-proc="$r/proc" \
        sh -c 'ip link set lo up 2>/dev/null
            mount -t tmpfs -o mode=0755,size=64k podrun-check "$0/dev" &&
                touch "$0/dev/null" && mount --bind /dev/null "$0/dev/null" || exit 1
            exec chroot "$0" "$@"' "$r" "$@"
}
