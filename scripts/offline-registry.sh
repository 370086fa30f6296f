#!/usr/bin/env bash
# A local registry for the book's Deployment (pods/cs-deployment.yaml) on a machine without
# internet: stand-ins for its two images, built from this machine's packages, under their
# docker.io names, and a registries.conf mirror entry that points docker.io at them.
#
#   scripts/offline-registry.sh [start] [--addr ADDR] [--port PORT] [--state-dir DIR]
#                               [--registries-conf PATH] [--force] [--rebuild]
#   scripts/offline-registry.sh stop   [--state-dir DIR]
#   scripts/offline-registry.sh status [--state-dir DIR]
#
# start (the default), idempotent:
#  1. runs Debian's docker-registry (scripts/install-deps.sh installs it) on ADDR:PORT (default
#     127.0.0.1:5000) with its own config.yml, storage, log and pidfile in DIR (default
#     /var/lib/podrun/offline-registry; never the packaged /etc/docker/registry/config.yml), or
#     reuses the one already running from DIR;
#  2. builds the rootfs recipes (rootfs/debug.sh, rootfs/python.sh, as rootfs/build.sh does, with
#     their chroot checks), marks them as stand-ins (/etc/os-release, image labels), writes each as
#     an OCI image layout (one gzip layer) in DIR/layouts (kept: rebuilt only when the recipe,
#     the host programs or this script change, or with --rebuild), and pushes them with skopeo:
#        docker.io/library/python:3.9-slim     <- rootfs/python.sh (the host's python3, stdlib, sh)
#        docker.io/nicolaka/netshoot:latest    <- rootfs/debug.sh  (curl, ip, ss, sh, busybox)
#  3. points docker.io at the registry in PATH (default /etc/podrun/registries.conf, podrun's
#     registries.conf v2 file), keeping every other entry. If PATH already has a docker.io entry
#     of its own, it prints what to add and exits 1, unless --force (which replaces that entry and
#     keeps the old file as PATH.bak).
# Keep ADDR a loopback address: the registry has neither TLS nor authentication.
# stop ends the registry started from DIR (its pid, nothing else); status shows it.
#
# Then: podrun pull python:3.9-slim; podrun pull nicolaka/netshoot; podrun apply -f pods/cs-deployment.yaml
# Run as root (the recipes' files are owned by root, their checks chroot).
set -euo pipefail
SCRIPTS_DIR=$(cd "$(dirname "$0")" && pwd)
REPO=$(dirname "$SCRIPTS_DIR")
ROOTFS_DIR=$REPO/rootfs
HELPER=$SCRIPTS_DIR/offline-registry.py
export ROOTFS_DIR

# The stand-ins: recipe | repository:tag in the registry | the image it stands in for |
# WorkingDir | what it holds.
STAND_INS=(
    "python|library/python:3.9-slim|python:3.9-slim|/|the host's python3 with its whole standard library, dash as sh, busybox"
    "debug|nicolaka/netshoot:latest|nicolaka/netshoot|/root|curl, iproute2's ip and ss, dash as sh, busybox (none of netshoot's other tools)"
)

usage() {
    sed -n '2,30p' "$0" | sed 's/^# \{0,1\}//'
    exit "${1:-0}"
}
say() { printf '%s\n' "$*"; }
die() {
    printf 'offline-registry: %s\n' "$*" >&2
    exit 1
}

action=start addr=127.0.0.1 port=5000 state_dir=/var/lib/podrun/offline-registry
registries_conf=/etc/podrun/registries.conf force=0 rebuild=0
while (($#)); do
    case $1 in
    start | stop | status) action=$1 ;;
    --addr) addr=${2:?--addr needs a value}; shift ;;
    --addr=*) addr=${1#*=} ;;
    --port) port=${2:?--port needs a value}; shift ;;
    --port=*) port=${1#*=} ;;
    --state-dir) state_dir=${2:?--state-dir needs a value}; shift ;;
    --state-dir=*) state_dir=${1#*=} ;;
    --registries-conf) registries_conf=${2:?--registries-conf needs a value}; shift ;;
    --registries-conf=*) registries_conf=${1#*=} ;;
    --force) force=1 ;;
    --rebuild) rebuild=1 ;;
    -h | --help) usage 0 ;;
    *) printf 'offline-registry: unknown argument %s\n\n' "$1" >&2; usage 2 ;;
    esac
    shift
done
if ! [[ $port =~ ^[0-9]+$ ]] || ((10#$port < 1 || 10#$port > 65535)); then
    die "--port $port is not a port number"
fi
port=$((10#$port))
[[ $state_dir == /* ]] || state_dir=$PWD/$state_dir
case $addr in
*:*) host="[$addr]:$port" ;; # IPv6
*) host="$addr:$port" ;;
esac
config=$state_dir/config.yml
pidfile=$state_dir/registry.pid
log=$state_dir/registry.log

# registry_pid: the pid of the registry started from this state dir, if it runs (the pidfile's
# pid, and only if that process is `docker-registry serve` of this config: never another's).
registry_pid() {
    local pid stat
    [ -f "$pidfile" ] || return 1
    pid=$(<"$pidfile")
    [[ $pid =~ ^[0-9]+$ ]] || return 1
    [ "$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)" = "docker-registry serve $config " ] || return 1
    stat=$(<"/proc/$pid/stat") || return 1
    stat=${stat##*) }
    [ "${stat%% *}" != Z ] || return 1
    echo "$pid"
}

# The address the config of the state dir serves on.
configured_host() {
    sed -n 's/^  addr: //p' "$config" 2>/dev/null
}

stop_registry() {
    local pid i
    if ! pid=$(registry_pid); then
        say "-- no registry running from $state_dir"
        rm -f "$pidfile"
        return 0
    fi
    kill -TERM "$pid"
    for ((i = 0; i < 100; i++)); do
        registry_pid >/dev/null || break
        sleep 0.1
    done
    if registry_pid >/dev/null; then
        kill -KILL "$pid" 2>/dev/null || true
        for ((i = 0; i < 50; i++)); do
            registry_pid >/dev/null || break
            sleep 0.1
        done
    fi
    registry_pid >/dev/null && die "registry pid $pid did not stop"
    rm -f "$pidfile"
    say "-- stopped the registry (pid $pid) on $(configured_host)"
}

status() {
    local pid h
    if ! pid=$(registry_pid); then
        say "offline registry: not running (state dir $state_dir)"
        return 3
    fi
    h=$(configured_host)
    say "offline registry: running, pid $pid, on $h (config $config, log $log)"
    say "repositories: $(curl -fsS --max-time 5 "http://$h/v2/_catalog" || echo '(not answering)')"
}

case $action in
stop) stop_registry; exit 0 ;;
status) rc=0; status || rc=$?; exit "$rc" ;;
esac

[ "$(id -u)" = 0 ] || die "run as root (the recipes' files are owned by root, their checks chroot)"
for cmd in docker-registry skopeo python3 curl; do
    command -v "$cmd" >/dev/null || die "$cmd not found (scripts/install-deps.sh installs it)"
done

# --- 1. the registry ---------------------------------------------------------------------------
mkdir -p "$state_dir/data" "$state_dir/layouts"
new_config=$(
    cat <<EOF
# podrun's offline registry (scripts/offline-registry.sh); not the packaged config.
version: 0.1
log:
  level: info
  fields:
    service: podrun-offline-registry
storage:
  filesystem:
    rootdirectory: $state_dir/data
  delete:
    enabled: true
http:
  addr: $host
  headers:
    X-Content-Type-Options: [nosniff]
EOF
)
if pid=$(registry_pid); then
    if [ "$(<"$config")" = "$new_config" ]; then
        say "-- reusing the registry running on $host (pid $pid, state $state_dir)"
    else
        say "-- the registry (pid $pid) runs on $(configured_host), not $host: restarting it"
        stop_registry
        pid=
    fi
else
    pid=
fi
if [ -z "$pid" ]; then
    # Someone else's server on the port (the packaged docker-registry service listens on :5000).
    if (: <"/dev/tcp/$addr/$port") 2>/dev/null; then
        die "something already listens on $host (the docker-registry service? systemctl stop docker-registry), or use --port"
    fi
    printf '%s\n' "$new_config" >"$config"
    # Its own session, stdio on the log: it outlives this script and holds none of its pipes.
    # The pidfile is written by the process that then becomes the registry.
    rm -f "$pidfile"
    # shellcheck disable=SC2016 # expanded by the inner sh
    setsid sh -c 'echo $$ >"$1.new" && mv "$1.new" "$1" && exec docker-registry serve "$2"' \
        sh "$pidfile" "$config" </dev/null >>"$log" 2>&1 &
    for ((i = 0; i < 150; i++)); do
        pid=$(registry_pid) && curl -fs -o /dev/null --max-time 1 "http://$host/v2/" && break
        pid=
        sleep 0.1
    done
    if [ -z "$pid" ]; then
        tail -5 "$log" >&2 || true
        if pid=$(registry_pid); then kill -TERM "$pid"; fi
        rm -f "$pidfile"
        die "the registry did not start on $host (log: $log)"
    fi
    say "-- started docker-registry on $host (pid $pid, config $config, storage $state_dir/data, log $log)"
fi

# --- 2. the stand-ins --------------------------------------------------------------------------
# build_stand_in RECIPE REPOSITORY:TAG STANDS_FOR WORKDIR CONTENTS: the layout DIR/layouts/RECIPE,
# rebuilt when its key (rootfs/build.sh's recipe hash, plus this script and its helper) changed.
# In a subshell, so the recipes cannot see each other's variables.
build_stand_in() (
    local recipe=$1 ref=$2 real=$3 workdir=$4 contents=$5 inputs input hash key layout stage
    local tag=${ref##*:} change pretty
    # shellcheck source=rootfs/lib.sh
    source "$ROOTFS_DIR/lib.sh"
    # shellcheck source=/dev/null
    source "$ROOTFS_DIR/$recipe.sh"
    inputs=$(recipe_inputs)
    # The recipe hash as rootfs/build.sh computes it.
    hash=$(
        {
            cat "$ROOTFS_DIR/lib.sh" "$ROOTFS_DIR/$recipe.sh"
            while read -r input; do
                if [ -f "$input" ]; then sha256sum "$input"; else echo "$input"; fi
            done <<<"$inputs"
        } | sha256sum | cut -c1-16
    )
    key=$(printf '%s\n' "$hash" "$ref" "$real" "$workdir" "$contents" | cat - "$SCRIPTS_DIR/offline-registry.sh" "$HELPER" | sha256sum | cut -c1-16)
    layout=$state_dir/layouts/$recipe
    if [ "$rebuild" = 0 ] && [ -f "$layout/index.json" ] && [ "$(cat "$layout.key" 2>/dev/null)" = "$key" ]; then
        say "== $real: stand-in layout up to date ($layout, recipe $hash)"
        return 0
    fi
    say "== $real: building the stand-in from rootfs/$recipe.sh (recipe $hash)"
    stage=$(mktemp -d "$state_dir/layouts/.build-$recipe.XXXXXX")
    trap 'rm -rf "$stage"' EXIT
    recipe_build "$stage/rootfs"
    # /etc/os-release says what it is (the recipe's own name kept in VARIANT).
    pretty=$(sed -n 's/^PRETTY_NAME="\(.*\)"$/\1/p' "$stage/rootfs/etc/os-release")
    sed -i -e "s|^PRETTY_NAME=.*|PRETTY_NAME=\"podrun offline stand-in for $real, not the real image: built from this machine's packages\"|" \
        -e "s|^NAME=.*|NAME=\"podrun offline stand-in\"|" \
        -e "s|^VARIANT=.*|VARIANT=\"$pretty; pushed as $ref by podrun's scripts/offline-registry.sh\"|" \
        "$stage/rootfs/etc/os-release"
    echo "VARIANT_ID=podrun-stand-in" >>"$stage/rootfs/etc/os-release"
    say "-- checking it with chroot"
    recipe_check "$stage/rootfs"
    # Env and Cmd as the recipe gives them to `podrun image import`.
    local args=()
    # shellcheck disable=SC2153 # CHANGES comes from the recipe
    for change in "${CHANGES[@]}"; do
        case $change in
        "ENV "*) args+=(--env "${change#ENV }") ;;
        "CMD "*) args+=(--cmd "${change#CMD }") ;;
        esac
    done
    args+=(--workdir "$workdir"
        --label "io.podrun.stand-in=$real"
        --label "org.opencontainers.image.title=podrun offline stand-in for $real"
        --label "org.opencontainers.image.description=podrun offline stand-in for $real, NOT the real image: built by podrun's scripts/offline-registry.sh (rootfs/$recipe.sh) from this machine's packages: $contents"
        --label "org.podrun.recipe-hash=$hash"
        --created-by "podrun scripts/offline-registry.sh: rootfs/$recipe.sh, from this machine's packages, as a stand-in for $real")
    python3 "$HELPER" layout "$stage/rootfs" "$stage/layout" "$tag" "${args[@]}"
    rm -rf "$layout"
    mv "$stage/layout" "$layout"
    echo "$key" >"$layout.key"
    say "-- wrote $layout"
)

push() {
    local recipe=$1 ref=$2 digest
    skopeo --insecure-policy copy -q --dest-tls-verify=false \
        "oci:$state_dir/layouts/$recipe:${ref##*:}" "docker://$host/$ref"
    digest=$(curl -fsSI --max-time 5 -H 'Accept: application/vnd.oci.image.manifest.v1+json' \
        "http://$host/v2/${ref%:*}/manifests/${ref##*:}" | tr -d '\r' | sed -n 's/^[Dd]ocker-[Cc]ontent-[Dd]igest: //p')
    say "-- pushed $host/$ref ($digest)"
}

for stand_in in "${STAND_INS[@]}"; do
    IFS='|' read -r recipe ref real workdir contents <<<"$stand_in"
    build_stand_in "$recipe" "$ref" "$real" "$workdir" "$contents"
    push "$recipe" "$ref"
done

# --- 3. the mirror entry -----------------------------------------------------------------------
helper_args=(registries-conf "$registries_conf" "$host")
[ "$force" = 0 ] || helper_args+=(--force)
rc=0
python3 "$HELPER" "${helper_args[@]}" || rc=$?
if [ "$rc" = 3 ]; then
    die "$registries_conf left as it is (the registry keeps running on $host); see above"
elif [ "$rc" != 0 ]; then
    exit "$rc"
fi

dir_flag="" conf_env=""
[ "$state_dir" = /var/lib/podrun/offline-registry ] || dir_flag=" --state-dir $state_dir"
[ "$registries_conf" = /etc/podrun/registries.conf ] ||
    conf_env="  export PODRUN_REGISTRIES_CONF=$registries_conf"$'\n'
cat <<EOF

The offline registry runs on $host (stop it: $0 stop$dir_flag).
Run the book's Deployment from it (apply will pull by itself once it can; until then pull first):
$conf_env  podrun pull python:3.9-slim
  podrun pull nicolaka/netshoot
  podrun apply -f $REPO/pods/cs-deployment.yaml
EOF
