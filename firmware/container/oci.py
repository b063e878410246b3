#!/usr/bin/env python3
"""Build the edgeproxy container image without a Docker engine.

    firmware/container/oci.py [--out build/oci] [--version V] TARGET=BINARY ...
    e.g.  oci.py x86_64=build/x86_64/edgeproxy aarch64=build/aarch64/edgeproxy

Writes, for the same contents and settings as firmware/container/Dockerfile:
  OUT/layout/                 an OCI image layout: one image per target, tagged
                              V-<arch> (e.g. 0.1.0-arm64), plus a multi-platform
                              index tagged V and "latest"
  OUT/edgeproxy-<arch>.docker.tar   `docker load`-able archive, tagged edgeproxy:V
                              (one per target: docker load takes one platform)

The single layer is a plain tar of the root filesystem that mkrootfs.sh assembles
(the binary, the default INI, /etc/hosts, /etc/passwd, /etc/group, the state
directory), written with fixed owners, modes and mtimes, so the same inputs give
the same digests. SOURCE_DATE_EPOCH sets the timestamps (default 0).
"""
import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import tarfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOTFS_SRC = os.path.join(HERE, "rootfs")

# TARGET -> OCI platform (GOARCH names, as Docker and registries use them).
PLATFORMS = {
    "x86_64": {"architecture": "amd64", "os": "linux"},
    "aarch64": {"architecture": "arm64", "os": "linux", "variant": "v8"},
    "armv7": {"architecture": "arm", "os": "linux", "variant": "v7"},
    "mipsel": {"architecture": "mipsle", "os": "linux"},
    "mips": {"architecture": "mips", "os": "linux"},
}

# Keep in step with the Dockerfile.
STATE_DIR = "var/lib/edgeproxy"
NOBODY = 65534
IMAGE_CONFIG = {
    "User": f"{NOBODY}:{NOBODY}",
    "ExposedPorts": {"80/tcp": {}, "443/tcp": {}},
    "Env": ["PATH=/"],
    "Entrypoint": ["/edgeproxy"],
    "Cmd": ["run"],
    "Volumes": {"/" + STATE_DIR: {}},
    "WorkingDir": "/",
    "StopSignal": "SIGTERM",
    # Docker's field (not in the OCI spec; OCI tools ignore it, docker load keeps it).
    "Healthcheck": {"Test": ["CMD", "/edgeproxy", "healthcheck"], "Interval": 30 * 10**9,
                    "Timeout": 5 * 10**9, "StartPeriod": 5 * 10**9, "Retries": 3},
}

MT_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MT_INDEX = "application/vnd.oci.image.index.v1+json"
MT_CONFIG = "application/vnd.oci.image.config.v1+json"
MT_LAYER_GZ = "application/vnd.oci.image.layer.v1.tar+gzip"


def layer_entries(binary):
    """(path, kind, mode, uid, gid, data) for every entry of the root, sorted."""
    entries = []
    for dirpath, dirnames, filenames in os.walk(ROOTFS_SRC):
        dirnames.sort()
        rel = os.path.relpath(dirpath, ROOTFS_SRC)
        if rel != ".":
            state = rel == STATE_DIR
            entries.append((rel, "dir", 0o700 if state else 0o755,
                            NOBODY if state else 0, NOBODY if state else 0, None))
        for f in sorted(filenames):
            p = os.path.normpath(os.path.join(rel, f))
            with open(os.path.join(dirpath, f), "rb") as fh:
                data = fh.read()
            state = p.startswith(STATE_DIR + "/")  # COPY --chown=65534 --chmod=0700
            entries.append((p, "file", 0o700 if state else 0o644, NOBODY if state else 0,
                            NOBODY if state else 0, data))
    with open(binary, "rb") as fh:
        entries.append(("edgeproxy", "file", 0o755, 0, 0, fh.read()))
    return sorted(entries, key=lambda e: e[0])


def make_layer(binary, mtime):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path, kind, mode, uid, gid, data in layer_entries(binary):
            ti = tarfile.TarInfo(path + ("/" if kind == "dir" else ""))
            ti.mode, ti.uid, ti.gid, ti.mtime = mode, uid, gid, mtime
            ti.uname = ti.gname = ""
            if kind == "dir":
                ti.type = tarfile.DIRTYPE
                tar.addfile(ti)
            else:
                ti.size = len(data)
                tar.addfile(ti, io.BytesIO(data))
    return buf.getvalue()


def sha(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


class Layout:
    def __init__(self, path):
        self.path = path
        if os.path.exists(path):
            shutil.rmtree(path)
        os.makedirs(os.path.join(path, "blobs", "sha256"))
        with open(os.path.join(path, "oci-layout"), "w") as f:
            json.dump({"imageLayoutVersion": "1.0.0"}, f)

    def blob(self, data, media_type):
        digest = sha(data)
        with open(os.path.join(self.path, "blobs", "sha256", digest[7:]), "wb") as f:
            f.write(data)
        return {"mediaType": media_type, "digest": digest, "size": len(data)}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="build/oci")
    ap.add_argument("--version", default="0.1.0")
    ap.add_argument("images", nargs="+", metavar="TARGET=BINARY")
    args = ap.parse_args()
    epoch = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
    created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))

    os.makedirs(args.out, exist_ok=True)
    layout = Layout(os.path.join(args.out, "layout"))
    refs, platform_manifests = [], []
    for spec in args.images:
        target, _, binary = spec.partition("=")
        if target not in PLATFORMS or not os.path.isfile(binary):
            ap.error(f"bad image {spec!r}: TARGET one of {', '.join(PLATFORMS)}, BINARY a file")
        plat = PLATFORMS[target]
        arch = plat["architecture"]
        tar = make_layer(binary, epoch)
        gz = gzip.compress(tar, compresslevel=9, mtime=0)
        config = dict(plat)
        config.update({
            "created": created,
            "author": "edgeproxy firmware/container/oci.py",
            "config": dict(IMAGE_CONFIG, Labels={
                "org.opencontainers.image.title": "edgeproxy",
                "org.opencontainers.image.version": args.version,
                "org.opencontainers.image.description": "edge router in one static binary (FROM scratch)",
            }),
            "rootfs": {"type": "layers", "diff_ids": [sha(tar)]},
            "history": [{"created": created, "created_by": "oci.py: COPY rootfs/ + edgeproxy (see Dockerfile)"}],
        })
        config_bytes = dumps(config)
        cfg_desc = layout.blob(config_bytes, MT_CONFIG)
        layer_desc = layout.blob(gz, MT_LAYER_GZ)
        manifest = {"schemaVersion": 2, "mediaType": MT_MANIFEST, "config": cfg_desc, "layers": [layer_desc],
                    "annotations": {"org.opencontainers.image.version": args.version}}
        man_desc = layout.blob(dumps(manifest), MT_MANIFEST)
        tag = f"{args.version}-{arch}"
        refs.append(dict(man_desc, platform=plat,
                         annotations={"org.opencontainers.image.ref.name": tag}))
        platform_manifests.append(dict(man_desc, platform=plat))

        # docker load: manifest.json + config + uncompressed layer
        dpath = os.path.join(args.out, f"edgeproxy-{arch}.docker.tar")
        with tarfile.open(dpath, "w", format=tarfile.PAX_FORMAT) as dt:
            def add(name, data):
                ti = tarfile.TarInfo(name)
                ti.size, ti.mtime, ti.mode = len(data), epoch, 0o644
                dt.addfile(ti, io.BytesIO(data))
            layer_dir = sha(tar)[7:]
            add(f"{cfg_desc['digest'][7:]}.json", config_bytes)
            add(f"{layer_dir}/layer.tar", tar)
            add("manifest.json", dumps([{"Config": f"{cfg_desc['digest'][7:]}.json",
                                         "RepoTags": [f"edgeproxy:{args.version}"],
                                         "Layers": [f"{layer_dir}/layer.tar"]}]))
            add("repositories", dumps({"edgeproxy": {args.version: layer_dir}}))
        print(f"{tag:16} {man_desc['digest']}  layer {layer_desc['size']} bytes gz, {len(tar)} tar  -> {dpath}")

    index = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": platform_manifests}
    idx_desc = layout.blob(dumps(index), MT_INDEX)
    top = {"schemaVersion": 2, "mediaType": MT_INDEX, "manifests": refs + [
        dict(idx_desc, annotations={"org.opencontainers.image.ref.name": t}) for t in (args.version, "latest")]}
    with open(os.path.join(layout.path, "index.json"), "wb") as f:
        f.write(dumps(top))
    print(f"OCI layout: {layout.path} (tags: {', '.join(r['annotations']['org.opencontainers.image.ref.name'] for r in refs)}, "
          f"{args.version}, latest)")


if __name__ == "__main__":
    main()
