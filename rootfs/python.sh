# shellcheck shell=bash disable=SC2034  # IMAGE, CHANGES and the functions are used by build.sh
# Recipe: podrun.local/python:3.11-slim, the offline stand-in for the official python:*-slim
# images: the host's python3.11 with its complete standard library (as the slim images, without
# the `test` package and the static-build `config-*` directory), every extension module with the
# shared libraries ldd lists, all compiled to __pycache__; dash as /bin/sh and busybox for the
# tools a slim image has (ls, cat, cp, rm, mkdir, sed, grep, ps, sleep, env, ...). So the book's
# web server, `/bin/sh -c 'echo "Python web-server" > index.html; python3 -m http.server 80'`,
# runs as printed.
# Sourced by rootfs/build.sh, which calls recipe_inputs, recipe_build and recipe_check.

IMAGE=podrun.local/python:3.11-slim
CHANGES=(
    'CMD ["python3"]'
    'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
    'ENV LANG=C.UTF-8'
    'LABEL org.opencontainers.image.title="podrun python slim" org.opencontainers.image.description="offline stand-in for python:*-slim: the host python3 with its whole standard library, dash, busybox"'
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

# The standard library's files, one host path a line (what the slim images leave out excluded).
stdlib_files() {
    local stdlib=$1
    find "$stdlib" \( -path "$stdlib/test" -o -path "$stdlib/config-*" -o -name __pycache__ \
        -o -name site-packages -o -name dist-packages \) -prune -o \( -type f -o -type l \) -print
}

recipe_inputs() {
    local py stdlib
    py=$(python_binary)
    echo "$py"
    for cmd in dash busybox; do
        readlink -f "$(PATH=/usr/bin:/bin command -v "$cmd")"
    done
    # The stdlib's file list and the package versions it comes from.
    stdlib=$("$py" -I -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    stdlib_files "$stdlib" | sort | sha256sum
    dpkg-query -W -f '${Package} ${Version}\n' "$(basename "$py")" "lib$(basename "$py")-stdlib" 2>/dev/null || true
}

recipe_build() {
    local r=$1 py name stdlib file lib
    py=$(python_binary)
    name=$(basename "$py")
    stage_layout "$r"
    add_shell_and_tools "$r"
    add_binary "$r" "$py" "/usr/bin/$name"
    ln -s "$name" "$r/usr/bin/python3"
    ln -s python3 "$r/usr/bin/python"
    stdlib=$("$py" -I -c 'import sysconfig; print(sysconfig.get_paths()["stdlib"])')
    while read -r file; do
        if [ -L "$file" ] && [ ! -e "$file" ]; then continue; fi # a dangling link (Debian's site-packages pointers)
        add_file "$r" "$file"
        case $file in
        *.so) for lib in $(libraries_of "$file"); do add_file "$r" "$lib"; done ;;
        esac
    done < <(stdlib_files "$stdlib")
    # Compiled once here, so that containers neither compile at every start nor write caches.
    "$py" -I -m compileall -q -j 0 -s "$r" -p / "$r$(image_path "$stdlib")" >/dev/null || true
    write_etc "$r" "podrun python slim image ($("$py" -V)), an offline stand-in for python:*-slim" podrun-python
    finish "$r"
}

recipe_check() {
    local r=$1
    # The whole standard library imports (what the slim images have: no test, tkinter, idlelib).
    in_chroot "$r" python3 -c '
import importlib, pkgutil, sys
skip = {"antigravity", "this", "idlelib", "tkinter", "turtle", "turtledemo", "test", "lib2to3", "msilib", "winreg", "winsound", "_winapi", "msvcrt", "nturl2path", "_msi", "ensurepip", "distutils", "venv"}
failed = []
for m in sorted(set(sys.stdlib_module_names) - skip):
    try:
        importlib.import_module(m)
    except ImportError as e:
        if not m.startswith("_") and "No module named" not in str(e) or m in ("_ssl", "_hashlib", "_multiprocessing", "_ctypes", "_sqlite3", "_decimal"):
            failed.append(f"{m}: {e}")
assert not failed, failed
import multiprocessing, multiprocessing.pool, importlib.abc, http.server, ssl, sqlite3, ctypes, venv
print(sys.version.split()[0], "stdlib ok")
' || return 1
    # The book's web server as printed: the shell writes index.html, http.server serves it; a
    # python client on the loopback of a private network namespace fetches it.
    # shellcheck disable=SC2016 # expanded by the image's shell
    in_chroot "$r" /bin/sh -c '
        set -e
        cd /tmp
        echo "Python web-server" > index.html
        python3 -m http.server 8080 --bind 127.0.0.1 >server.log 2>&1 &
        server=$!
        python3 -c "
import time, urllib.request
body = None
for _ in range(100):
    try:
        body = urllib.request.urlopen(\"http://127.0.0.1:8080/index.html\", timeout=2).read()
        break
    except OSError:
        time.sleep(0.05)
assert body == b\"Python web-server\\n\", body
print(\"http.server ok:\", body.decode().strip())
"
        kill $server
        rm -f index.html server.log # the check leaves nothing in the image
        ls / | grep -q usr && cat /etc/os-release | grep -q stand-in && echo "shell and tools ok"
    '
}
