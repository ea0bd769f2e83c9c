#!/usr/bin/env python3
"""Regenerates test/fuzz/corpus/image: small seeds for fuzz_image (whole-disk
ext2/ext4, MBR and GPT disks with an ext2 partition holding a kernel, an
extended-partition loop, the 8 KiB GPT reproducer of issue 10, a qcow2
header). Needs mke2fs and qemu-img. Usage: make_image_corpus.py OUTDIR"""
import os
import struct
import subprocess
import sys
import tempfile
import zlib

out = sys.argv[1]
os.makedirs(out, exist_ok=True)
tmp = tempfile.mkdtemp()


def tree(name):
    t = os.path.join(tmp, name)
    os.makedirs(os.path.join(t, "boot"))
    os.makedirs(os.path.join(t, "etc"))
    with open(os.path.join(t, "boot", "vmlinuz-1.0"), "wb") as f:
        f.write(os.urandom(900))
    with open(os.path.join(t, "boot", "initrd.img-1.0"), "wb") as f:
        f.write(os.urandom(300))
    os.symlink("boot/vmlinuz-1.0", os.path.join(t, "vmlinuz"))
    os.symlink("/boot/initrd.img-1.0", os.path.join(t, "initrd.img"))
    return t


def mkfs(path, kib, t, fstype="ext2", offset=0):
    args = ["mke2fs", "-q", "-F", "-t", fstype, "-b", "1024", "-N", "32", "-m", "0",
            "-O", "^has_journal,^resize_inode", "-E", "offset=%d" % offset, "-d", t, path, "%dk" % kib]
    subprocess.run(args, check=True, stdout=subprocess.DEVNULL)


def sized(path, size):
    with open(path, "wb") as f:
        f.truncate(size)


def write_at(path, off, data):
    with open(path, "r+b") as f:
        f.seek(off)
        f.write(data)


def mbr(entries):
    s = bytearray(512)
    for i, (typ, start, count) in enumerate(entries):
        e = 446 + 16 * i
        s[e + 4] = typ
        s[e + 8:e + 16] = struct.pack("<II", start, count)
    s[510:512] = b"\x55\xaa"
    return bytes(s)


def gpt(sectors, parts):
    ents = bytearray(128 * 128)
    linux = bytes.fromhex("af3dc60f838472478e793d69d8477de4")
    for i, (first, last) in enumerate(parts):
        ents[i * 128:i * 128 + 16] = linux
        ents[i * 128 + 16:i * 128 + 32] = bytes([i + 1]) * 16
        ents[i * 128 + 32:i * 128 + 48] = struct.pack("<QQ", first, last)
    h = bytearray(92)
    h[0:8] = b"EFI PART"
    struct.pack_into("<IIII", h, 8, 0x00010000, 92, 0, 0)
    struct.pack_into("<QQQQ", h, 24, 1, sectors - 1, 34, max(sectors - 34, 0))
    h[56:72] = b"\x42" * 16
    struct.pack_into("<QIII", h, 72, 2, 128, 128, zlib.crc32(ents))
    struct.pack_into("<I", h, 16, zlib.crc32(h))
    return mbr([(0xee, 1, sectors - 1)]) + bytes(h) + bytes(420) + bytes(ents)


p = os.path.join(out, "ext2-whole.img")
mkfs(p, 128, tree("a"))
p = os.path.join(out, "ext4-whole.img")
mkfs(p, 192, tree("b"), "ext4")
p = os.path.join(out, "mbr-ext2.img")
sized(p, 192 * 1024)
mkfs(p, 128, tree("c"), offset=32 * 1024)
write_at(p, 0, mbr([(0x83, 64, 256)]))
p = os.path.join(out, "gpt-ext2.img")
sized(p, 224 * 1024)
mkfs(p, 128, tree("d"), offset=40 * 512)
write_at(p, 0, gpt(448, [(40, 40 + 255)]))
p = os.path.join(out, "ebr-loop.img")
sized(p, 64 * 1024)
write_at(p, 0, mbr([(0x05, 64, 64)]))
write_at(p, 64 * 512, mbr([(0x83, 1, 10), (0x05, 0, 64)]))
p = os.path.join(out, "gpt-lba-2^64-8k.img")
g = bytearray(gpt(16, [(0xfffffffffffffff0, 0xffffffffffffffff)]))
with open(p, "wb") as f:
    f.write(bytes(g[:8192]))
q = os.path.join(tmp, "q.qcow2")
subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", q, "64M"], check=True)
with open(q, "rb") as f, open(os.path.join(out, "qcow2-head.img"), "wb") as o:
    o.write(f.read(512))
subprocess.run(["rm", "-rf", tmp], check=True)
