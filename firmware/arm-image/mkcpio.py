#!/usr/bin/env python3
"""Write a directory tree as a gzip'd "newc" cpio archive (an initramfs), with every
entry owned by root and timestamps at 0, so the same tree gives the same bytes.

    mkcpio.py DIR OUT.cpio.gz [PATH=UID:GID ...]

PATH=UID:GID gives that entry (relative to DIR) another owner.
"""
import gzip
import os
import stat
import sys


def entries(root):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for name in sorted(dirnames + filenames):
            path = os.path.join(dirpath, name)
            yield os.path.relpath(path, root), path


def header(ino, mode, nlink, size, name, uid=0, gid=0):
    fields = [ino, mode, uid, gid, nlink, 0, size, 0, 0, 0, 0, len(name) + 1, 0]
    return b"070701" + b"".join(b"%08X" % f for f in fields)


def pad(n):
    return b"\0" * ((4 - n % 4) % 4)


def main():
    root, out = sys.argv[1], sys.argv[2]
    owners = {}
    for spec in sys.argv[3:]:
        path, _, ids = spec.partition("=")
        uid, _, gid = ids.partition(":")
        owners[path.strip("/")] = (int(uid), int(gid))
    data = bytearray()
    ino = 1
    for rel, path in entries(root):
        st = os.lstat(path)
        name = rel.encode()
        if stat.S_ISLNK(st.st_mode):
            body = os.readlink(path).encode()
        elif stat.S_ISREG(st.st_mode):
            with open(path, "rb") as f:
                body = f.read()
        else:
            body = b""
        mode = (st.st_mode & 0o170000) | (st.st_mode & 0o7777)
        nlink = 2 if stat.S_ISDIR(st.st_mode) else 1
        uid, gid = owners.get(rel, (0, 0))
        h = header(ino, mode, nlink, len(body), name, uid, gid) + name + b"\0"
        data += h + pad(len(h)) + body + pad(len(body))
        ino += 1
    t = header(0, 0, 1, 0, b"TRAILER!!!") + b"TRAILER!!!\0"
    data += t + pad(len(t))
    with open(out, "wb") as f:
        f.write(gzip.compress(bytes(data), compresslevel=9, mtime=0))


if __name__ == "__main__":
    main()
