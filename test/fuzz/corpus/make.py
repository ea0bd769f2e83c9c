#!/usr/bin/env python3
"""Writes the seed corpora of test/fuzz (committed; rerun to regenerate).
Each file is one input; names say what it is. Reproducers of findings of
issue 10 are named repro-*. Needs qemu-img for the qcow2 seeds."""
import hashlib, io, os, struct, subprocess, tarfile, tempfile

here = os.path.dirname(os.path.abspath(__file__))


def put(target, name, data):
    d = os.path.join(here, target)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


# --- frame: request lines as clients send them, and hostile ones
spec = ('{"name":"web-2","disk_path":"/r/clusters/web/web-2/disk","seed_path":"/r/s.iso",'
        '"fixture_paths":["/r/f0.img"],"cpus":2,"memory_bytes":4294967296,'
        '"serial_log_path":"/r/serial.log","ephemeral":true}')
put("frame", "status", '{"cmd":"status"}\n')
put("frame", "stream", '{"cmd":"createnetwork"}\n{"cmd":"reserve","name":"web-2","ip_hint":"192.168.3.3"}\n'
    '{"cmd":"boot-member","spec":%s}\n' % spec)
put("frame", "reply-status", '{"status":{"name":"web-1","pid":1234,"running":true,"ip":"","state":"starting"}}\n')
put("frame", "reply-reservation", '{"reservation":{"ip":"192.168.3.3","mac":"02:aa:bb:cc:dd:ee"}}\n')
put("frame", "repro-hostile-spec", '{"cmd":"boot-member","spec":{"name":"x-1","disk_path":"/etc/shadow",'
    '"serial_log_path":"/root/.bashrc","fixture_paths":["/dev/sda","../../x"]}}\n')
put("frame", "bad-types", '{"cmd":"boot-member","spec":{"cpus":"two","fixture_paths":[1],"ephemeral":1}}\n')
put("frame", "long-line", "x" * 5000 + "\n")
put("frame", "crlf-no-newline", '{"cmd":"stop"}\r')
put("frame", "nested", '{"cmd":"status","future":' + "[" * 200 + "]" * 200 + "}\n")

# --- tar_names: byte 0 bit 0 = root depth, then name NUL target
put("tar_names", "repro-sibling-symlink", b"\x01top/l\x00../secret")
put("tar_names", "inside", b"\x01top/d/up\x00../f")
put("tar_names", "dotdot-name", b"\x00top/../../etc/passwd\x00x")
put("tar_names", "absolute", b"\x00/etc/passwd\x00/etc")
put("tar_names", "after-name", b"\x00top/a/l\x00b/../../../..")
put("tar_names", "top-link", b"\x01top\x00sibling")


def tar(entries):
    b = io.BytesIO()
    with tarfile.open(fileobj=b, mode="w", format=tarfile.PAX_FORMAT) as t:
        for kind, name, arg in entries:
            i = tarfile.TarInfo(name)
            i.mtime = 1000000000
            if kind == "d":
                i.type, i.mode = tarfile.DIRTYPE, 0o755
                t.addfile(i)
            elif kind == "f":
                i.size, i.mode = len(arg), 0o4755
                t.addfile(i, io.BytesIO(arg))
            elif kind == "l":
                i.type, i.linkname = tarfile.SYMTYPE, arg
                t.addfile(i)
            elif kind == "h":
                i.type, i.linkname = tarfile.LNKTYPE, arg
                t.addfile(i)
            elif kind == "c":
                i.type, i.devmajor, i.devminor = tarfile.CHRTYPE, 1, 3
                t.addfile(i)
            elif kind == "ro":
                i.type, i.mode = tarfile.DIRTYPE, 0o500
                t.addfile(i)
    return b.getvalue()


# tar_extract: byte 0 bit 0 = top is the destination, bit 1 = rename the top
put("tar_extract", "repro-sibling-symlink", b"\x03" + tar([("d", "top", None), ("d", "top/d", None),
                                                           ("l", "top/l", "../secret")]))
put("tar_extract", "tree", b"\x02" + tar([("d", "top", None), ("d", "top/d", None), ("f", "top/f", b"data"),
                                          ("l", "top/d/up", "../f"), ("h", "top/d/hard", "top/f"),
                                          ("ro", "top/ro", None), ("f", "top/ro/x", b"x")]))
put("tar_extract", "escapes", b"\x00" + tar([("d", "top", None), ("f", "/tmp/pwned", b"x"),
                                             ("f", "top/../../pwned", b"x"), ("l", "top/esc", "../../x"),
                                             ("h", "top/h", "/etc/passwd"), ("c", "top/null", None)]))
put("tar_extract", "via-symlink", b"\x00" + tar([("d", "top", None), ("d", "top/sub", None),
                                                 ("l", "top/lnk", "sub"), ("f", "top/lnk/file", b"x")]))

# --- seed: byte 0 flags (net, nameservers, mounts), byte 1 prefix, then NUL-separated fields
fields = ["web-1", "iid-web-1", "fleetbox", "ssh-ed25519 AAAA user@host",
          "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\n-----END OPENSSH PRIVATE KEY-----\n",
          "ssh-ed25519 BBBB host", "02:aa:bb:cc:dd:ee", "192.168.3.2", "192.168.3.1", "192.168.3.1",
          "1.1.1.1", "FBFIX0", "/srv/data", "/srv/other dir"]
put("seed", "full", bytes([1 | 2 << 1 | 2 << 3, 28]) + "\0".join(fields).encode())
bad = list(fields)
bad[6] = "02:aa:bb:cc:dd:ee\nruncmd: [reboot]"
put("seed", "repro-injected-line", bytes([1 | 1 << 1 | 1 << 3, 28]) + "\0".join(bad).encode())

# --- catalog
h64 = hashlib.sha256(b"x").hexdigest()
put("catalog", "alias", "debian-12")
put("catalog", "pinned", "https://example.org/images/x.qcow2#sha256=" + h64.upper())
put("catalog", "pinned512", "http://example.org/y.raw#sha512=" + hashlib.sha512(b"x").hexdigest())
put("catalog", "file-url", "file:///var/tmp/img.raw")
put("catalog", "no-host", "https://")
put("catalog", "bad-pin", "https://e/x#sha256=zz")
put("catalog", "dot-name", "https://example.org/..")

# --- qcow2: real headers, and hostile ones
with tempfile.TemporaryDirectory() as t:
    for name, args in [("v3-backing", ["-F", "raw", "-b", "/var/cache/base.raw"]),
                       ("v2-backing", ["-o", "compat=0.10", "-F", "qcow2", "-b", "../rel/base.qcow2"]),
                       ("plain", [])]:
        p = os.path.join(t, name)
        subprocess.run(["qemu-img", "create", "-q", "-u", "-f", "qcow2"] + args + [p, "16M"], check=True)
        with open(p, "rb") as f:
            put("qcow2", name, f.read(4096))
    with open(os.path.join(here, "qcow2", "v3-backing"), "rb") as f:
        head = bytearray(f.read())
datafile = bytearray(head)
datafile[79] |= 4
put("qcow2", "repro-data-file", bytes(datafile))
far = bytearray(head)
far[8:16] = struct.pack(">Q", 2**64 - 16)
put("qcow2", "repro-backing-offset-wraps", bytes(far))
long_name = bytearray(head)
long_name[16:20] = struct.pack(">I", 0xffffffff)
put("qcow2", "repro-backing-size-huge", bytes(long_name))
put("qcow2", "truncated", bytes(head[:80]))
