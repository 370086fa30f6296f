# shellcheck shell=bash disable=SC2034  # IMAGE, CHANGES and the functions are used by build.sh
# Recipe: podrun.local/python:3.11-slim, the host's python3.11 with only the standard library a
# small server needs (socketserver, http.server, json, os, socket, threading, logging, argparse,
# subprocess, ...; no tests, idlelib, tkinter, ensurepip, lib2to3, distutils, OpenSSL, bz2, lzma)
# compiled to __pycache__, and the shared libraries ldd lists. No shell.
# Sourced by rootfs/build.sh, which calls recipe_inputs, recipe_build and recipe_check.

IMAGE=podrun.local/python:3.11-slim
CHANGES=(
    'CMD ["python3"]'
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    'LABEL org.opencontainers.image.title="podrun python slim"'
)
PYTHON_MODULES=(
    socketserver http.server http.client json os socket threading time datetime argparse logging
    subprocess signal re urllib.parse hashlib random pathlib shutil tempfile base64 traceback
    typing dataclasses
)

# The host python: python3.11 (the tag says 3.11), else the host's python3 with a warning.
python_binary() {
    if [ -x /usr/bin/python3.11 ]; then
        echo /usr/bin/python3.11
    else
        local py
        py=$(readlink -f /usr/bin/python3) || { echo "python image: no /usr/bin/python3 on the host (apt-get install python3)" >&2; return 1; }
        echo "python image: warning: no python3.11 on the host; $IMAGE gets $py" >&2
        echo "$py"
    fi
}

recipe_inputs() {
    python_binary
    echo "$ROOTFS_DIR/python-modules.py"
    printf '%s\n' "${PYTHON_MODULES[@]}"
}

recipe_build() {
    local r=$1 py name stdlib file lib
    py=$(python_binary)
    name=$(basename "$py")
    stage_layout "$r"
    add_binary "$r" "$py" "/usr/bin/$name"
    ln -s "$name" "$r/usr/bin/python3"
    stdlib=$("$py" -I -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    mkdir -p "$r$(image_path "$stdlib")/lib-dynload"
    while read -r file; do
        add_file "$r" "$file"
        case $file in
        *.so) for lib in $(libraries_of "$file"); do add_file "$r" "$lib"; done ;;
        esac
    done < <("$py" -I "$ROOTFS_DIR/python-modules.py" "${PYTHON_MODULES[@]}")
    # Compiled once here, so that containers neither compile at every start nor write caches.
    "$py" -I -m compileall -q -j 0 -s "$r" -p / "$r$(image_path "$stdlib")" >/dev/null
    write_etc "$r" "podrun python slim image ($("$py" -V))" podrun-python
    finish "$r"
}

recipe_check() {
    local r=$1
    in_chroot "$r" python3 -c 'import socketserver, http.server, json, os' || return 1
    # The web-server's pattern end to end, on the loopback of a private network namespace.
    in_chroot "$r" python3 -S -c '
import hashlib, http.client, http.server, json, socketserver, sys, threading
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"path": self.path}).encode()
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), H)
threading.Thread(target=server.serve_forever, daemon=True).start()
conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
conn.request("GET", "/check")
reply = json.loads(conn.getresponse().read())
server.shutdown()
assert reply == {"path": "/check"}, reply
print(sys.version.split()[0], "http.server ok, sha256", hashlib.sha256(b"").hexdigest()[:12])
'
}
