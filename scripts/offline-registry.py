#!/usr/bin/env python3
"""Helpers of scripts/offline-registry.sh (python3 standard library only).

  offline-registry.py layout ROOTFS LAYOUT TAG [--env K=V]... [--cmd JSON] [--workdir DIR]
                             [--label K=V]... [--created-by TEXT]
      Write an OCI image layout (https://github.com/opencontainers/image-spec/blob/main/image-layout.md)
      at LAYOUT holding one image, tagged TAG: the tree at ROOTFS as one gzip tar layer, and an
      OCI image config with the given Env, Cmd, WorkingDir and Labels.

  offline-registry.py registries-conf PATH MIRROR [--force]
      Point docker.io at MIRROR (host:port, plain HTTP) in the registries.conf v2 file PATH
      (containers-registries.conf(5), as podrun reads it), keeping every other entry. Exit 0:
      written or already so; exit 3: PATH already has a docker.io entry of its own (what to add
      is printed; --force replaces that entry, keeping a copy of the file in PATH.bak).
"""

import argparse
import datetime
import gzip
import hashlib
import json
import os
import platform
import re
import shutil
import sys
import tarfile
import tempfile

# ---------------------------------------------------------------------------------------------
# OCI layout


class HashingWriter:
    """A write-only file that hashes (and counts) what passes through to `inner`."""

    def __init__(self, inner):
        self.inner = inner
        self.hash = hashlib.sha256()
        self.size = 0

    def write(self, data):
        self.hash.update(data)
        self.size += len(data)
        return self.inner.write(data)

    def flush(self):
        self.inner.flush()


def go_arch():
    machine = platform.machine()
    return {
        "x86_64": "amd64",
        "aarch64": "arm64",
        "armv7l": "arm",
        "i686": "386",
        "ppc64le": "ppc64le",
        "s390x": "s390x",
        "riscv64": "riscv64",
    }.get(machine, machine)


def tar_entries(root):
    """Every path below `root` (host path, name in the layer), each directory before what it
    holds, sorted; `root` itself left out."""
    for dirpath, dirnames, filenames in os.walk(root):
        rel = os.path.relpath(dirpath, root)
        if rel != ".":
            yield dirpath, rel
        links = [d for d in dirnames if os.path.islink(os.path.join(dirpath, d))]
        dirnames[:] = sorted(d for d in dirnames if d not in links)
        for name in sorted(filenames + links):
            yield os.path.join(dirpath, name), os.path.normpath(os.path.join(rel, name))


def root_owned(info):
    info.uid = info.gid = 0
    info.uname = info.gname = "root"
    return info


def write_layer(rootfs, blobs):
    """The tree at `rootfs` as a gzip tar blob in `blobs`: (digest, size, diff_id)."""
    fd, tmp = tempfile.mkstemp(dir=blobs, prefix=".layer-")
    with os.fdopen(fd, "wb") as raw:
        compressed = HashingWriter(raw)
        with gzip.GzipFile(fileobj=compressed, mode="wb", compresslevel=6, mtime=0) as gz:
            plain = HashingWriter(gz)
            with tarfile.open(fileobj=plain, mode="w|", format=tarfile.PAX_FORMAT) as tar:
                for path, arcname in tar_entries(rootfs):
                    info = tar.gettarinfo(path, arcname)
                    if info is None:  # a socket: not part of an image
                        continue
                    info = root_owned(info)
                    if info.isreg():
                        with open(path, "rb") as f:
                            tar.addfile(info, f)
                    else:
                        tar.addfile(info)
    digest = compressed.hash.hexdigest()
    os.replace(tmp, os.path.join(blobs, digest))
    return "sha256:" + digest, compressed.size, "sha256:" + plain.hash.hexdigest()


def write_blob(blobs, data):
    digest = hashlib.sha256(data).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(data)
    return {"digest": "sha256:" + digest, "size": len(data)}


def key_values(pairs, what):
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            sys.exit(f"offline-registry.py: {what} {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def layout(args):
    if os.path.exists(args.layout):
        shutil.rmtree(args.layout)
    blobs = os.path.join(args.layout, "blobs", "sha256")
    os.makedirs(blobs)
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    layer_digest, layer_size, diff_id = write_layer(args.rootfs, blobs)
    config = {"Env": args.env}
    if args.cmd is not None:
        config["Cmd"] = json.loads(args.cmd)
    if args.workdir:
        config["WorkingDir"] = args.workdir
    labels = key_values(args.label, "label")
    if labels:
        config["Labels"] = labels
    image_config = {
        "created": now,
        "architecture": go_arch(),
        "os": "linux",
        "config": config,
        "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        "history": [{"created": now, "created_by": args.created_by or "podrun scripts/offline-registry.sh"}],
    }
    config_desc = write_blob(blobs, json.dumps(image_config, indent=2).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", **config_desc},
        "layers": [
            {
                "mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                "digest": layer_digest,
                "size": layer_size,
            }
        ],
    }
    if labels:
        manifest["annotations"] = {
            k: v for k, v in labels.items() if k.startswith("org.opencontainers.image.")
        }
    manifest_desc = write_blob(blobs, json.dumps(manifest, indent=2).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                **manifest_desc,
                "annotations": {"org.opencontainers.image.ref.name": args.tag},
            }
        ],
    }
    with open(os.path.join(args.layout, "index.json"), "w") as f:
        json.dump(index, f, indent=2)
    with open(os.path.join(args.layout, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    print(
        f"-- OCI layout, tag {args.tag}: manifest {manifest_desc['digest'][:19]}, "
        f"config {config_desc['digest'][:19]}, layer {layer_digest[:19]} "
        f"({layer_size / 1e6:.1f} MB gzip)"
    )


# ---------------------------------------------------------------------------------------------
# registries.conf

HEADER = re.compile(r"^\s*\[")
REGISTRY = re.compile(r"^\s*\[\[\s*registry\s*\]\]\s*(#.*)?$")
MIRROR = re.compile(r"^\s*\[\[\s*registry\s*\.\s*mirror\s*\]\]\s*(#.*)?$")
KEY = re.compile(r"""^\s*([A-Za-z0-9_-]+)\s*=\s*(?:"([^"]*)"|'([^']*)'|(true|false))\s*(#.*)?$""")


def scan(text):
    """The file as blocks: (kind, lines) with kind "registry" (a [[registry]] table and its
    [[registry.mirror]] tables, with keys parsed) or "other"."""
    blocks = []
    current = {"kind": "other", "lines": []}
    blocks.append(current)

    def comments_above():
        """The comment lines right above a table header: they go with it."""
        moved = []
        while current["lines"] and current["lines"][-1].lstrip().startswith("#"):
            moved.insert(0, current["lines"].pop())
        return moved

    for line in text.splitlines(keepends=True):
        if REGISTRY.match(line):
            current = {"kind": "registry", "lines": comments_above(), "keys": {}, "mirrors": []}
            blocks.append(current)
        elif MIRROR.match(line) and current["kind"] == "registry":
            current["mirrors"].append({})
        elif HEADER.match(line):
            current = {"kind": "other", "lines": comments_above()}
            blocks.append(current)
        elif current["kind"] == "registry":
            m = KEY.match(line)
            if m:
                value = m.group(2) if m.group(2) is not None else m.group(3)
                if m.group(4) is not None:
                    value = m.group(4) == "true"
                (current["mirrors"][-1] if current["mirrors"] else current["keys"])[m.group(1)] = value
        current["lines"].append(line)
    return blocks


def prefix_of(entry):
    return (entry.get("prefix") or entry.get("location") or "").rstrip("/")


def for_docker_io(entry):
    p = prefix_of(entry)
    return p == "docker.io" or p.startswith("docker.io/")


def parsed_entries(text, path):
    """The [[registry]] entries as tomllib reads them (None without tomllib: python < 3.11)."""
    try:
        import tomllib
    except ImportError:
        return None
    try:
        return tomllib.loads(text).get("registry", [])
    except tomllib.TOMLDecodeError as e:
        sys.exit(f"offline-registry.py: {path} is not valid TOML ({e}); not touching it")


def entry_block(mirror):
    return (
        "# docker.io images from podrun's offline registry (scripts/offline-registry.sh: stand-ins\n"
        "# for python:3.9-slim and nicolaka/netshoot built from this machine's packages), then docker.io.\n"
        "[[registry]]\n"
        'prefix = "docker.io"\n'
        'location = "docker.io"\n'
        "\n"
        "[[registry.mirror]]\n"
        f'location = "{mirror}"\n'
        "insecure = true\n"
    )


def write_atomically(path, text, mode):
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".registries.conf.")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.chmod(tmp, mode)
    os.replace(tmp, path)


def registries_conf(args):
    path, mirror = args.path, args.mirror
    block = entry_block(mirror)
    if not os.path.exists(path):
        write_atomically(path, block, 0o644)
        print(f"-- wrote {path}: docker.io pulls from the mirror {mirror} first")
        return 0
    with open(path) as f:
        text = f.read()
    mode = os.stat(path).st_mode & 0o7777
    parsed = parsed_entries(text, path)
    blocks = scan(text)
    ours = [b for b in blocks if b["kind"] == "registry" and for_docker_io(b["keys"])]
    if parsed is not None and len(ours) != len([e for e in parsed if for_docker_io(e)]):
        sys.exit(
            f"offline-registry.py: {path} has docker.io entries written in a form this script does "
            f"not edit (inline tables?); add by hand:\n\n{block}"
        )
    if not ours:
        sep = "" if not text else ("\n" if text.endswith("\n") else "\n\n")
        write_atomically(path, text + sep + block, mode)
        print(f"-- added a docker.io entry to {path}: docker.io pulls from the mirror {mirror} first")
        return 0
    if (
        len(ours) == 1
        and prefix_of(ours[0]["keys"]) == "docker.io"
        and not ours[0]["keys"].get("blocked", False)
        and any(m.get("location") == mirror and m.get("insecure") is True for m in ours[0]["mirrors"])
    ):
        print(f"-- {path} already pulls docker.io from the mirror {mirror}: unchanged")
        return 0
    existing = "".join("".join(b["lines"]) for b in ours)
    if not args.force:
        print(
            f"offline-registry: {path} already has an entry for docker.io of its own:\n\n"
            f"{existing.rstrip()}\n\n"
            f"To pull the stand-ins from the offline registry, give that entry this mirror (first):\n\n"
            f'[[registry.mirror]]\nlocation = "{mirror}"\ninsecure = true\n\n'
            f"or run again with --force to replace the docker.io entries above with:\n\n{block}",
            file=sys.stderr,
        )
        return 3
    kept = "".join("".join(b["lines"]) for b in blocks if b not in ours)
    if kept and not kept.endswith("\n"):
        kept += "\n"
    new = kept + ("\n" if kept and not kept.endswith("\n\n") else "") + block
    if parsed is not None:
        check = [e for e in parsed_entries(new, path) if for_docker_io(e)]
        if len(check) != 1 or check[0].get("mirror", [{}])[0].get("location") != mirror:
            sys.exit(f"offline-registry.py: could not edit {path} safely; add by hand:\n\n{block}")
    shutil.copy2(path, path + ".bak")
    write_atomically(path, new, mode)
    print(
        f"-- replaced the docker.io entries of {path} (the old file is {path}.bak):\n"
        f"{existing.rstrip()}\n-- with: docker.io pulls from the mirror {mirror} first"
    )
    return 0


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="what", required=True)
    p = sub.add_parser("layout")
    p.add_argument("rootfs")
    p.add_argument("layout")
    p.add_argument("tag")
    p.add_argument("--env", action="append", default=[])
    p.add_argument("--cmd")
    p.add_argument("--workdir")
    p.add_argument("--label", action="append", default=[])
    p.add_argument("--created-by")
    p = sub.add_parser("registries-conf")
    p.add_argument("path")
    p.add_argument("mirror")
    p.add_argument("--force", action="store_true")
    args = parser.parse_args()
    if args.what == "layout":
        layout(args)
        return 0
    return registries_conf(args)


if __name__ == "__main__":
    sys.exit(main())
