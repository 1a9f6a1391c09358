#!/usr/bin/env python3
"""Writes the binary seeds of fuzz/seeds/layer/ and fuzz/seeds/oci/ (the
manifest seeds are plain JSON, written by hand). Run from anywhere:
python3 fuzz/seeds/make-seeds.py. Deterministic: same bytes every run."""
import hashlib, io, json, os, tarfile

HERE = os.path.dirname(os.path.abspath(__file__))
SEP = b'\n%%\n'


def tar(entries, fmt=tarfile.GNU_FORMAT):
    """A tar stream, trimmed to its entries and the two-block end marker
    (tarfile pads to 10 KiB; small seeds fuzz faster)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode='w', format=fmt) as t:
        for name, kind, arg in entries:
            ti = tarfile.TarInfo(name)
            ti.mtime = 0
            if kind == 'dir':
                ti.type = tarfile.DIRTYPE; ti.mode = 0o755; t.addfile(ti)
            elif kind == 'file':
                ti.size = len(arg); ti.mode = 0o644; t.addfile(ti, io.BytesIO(arg))
            elif kind == 'sym':
                ti.type = tarfile.SYMTYPE; ti.linkname = arg; ti.mode = 0o777; t.addfile(ti)
            elif kind == 'hard':
                ti.type = tarfile.LNKTYPE; ti.linkname = arg; t.addfile(ti)
            elif kind == 'chr':
                ti.type = tarfile.CHRTYPE; ti.devmajor, ti.devminor = arg; t.addfile(ti)
            elif kind == 'fifo':
                ti.type = tarfile.FIFOTYPE; t.addfile(ti)
    body = buf.getvalue().rstrip(b'\0')
    return body.ljust((len(body) + 511) // 512 * 512, b'\0') + b'\0' * 1024


def write(rel, data):
    with open(os.path.join(HERE, rel), 'wb') as f:
        f.write(data)


# layer: applied on fuzz/src/image.rs's base layer (bin/busybox, bin/sh ->
# busybox, etc/{passwd,group,hard}, usr/lib/libc.so, lib -> usr/lib,
# var/lib/x/y, dev/null).
write('layer/basic.tar', tar([
    ('app', 'dir', None),
    ('app/hello.txt', 'file', b'hello\n'),
    ('app/link', 'sym', 'hello.txt'),
    ('app/hard', 'hard', 'app/hello.txt'),
    ('etc/.wh.group', 'file', b''),
    ('var/lib/.wh..wh..opq', 'file', b''),
    ('var/lib/new', 'file', b'n'),
    ('bin/.wh.sh', 'file', b''),
    ('bin/sh', 'hard', 'bin/busybox'),
]))
write('layer/pax.tar', tar([
    ('deep/' + 'x' * 120 + '/file', 'file', b'long name'),
    ('deep/' + 'x' * 120 + '/sym', 'sym', '../' + 'y' * 110),
    ('./etc/hard2', 'hard', 'etc/hard'),
    ('usr/lib/.wh..wh..opq', 'file', b''),
    ('dev/zero', 'chr', (1, 5)),
    ('run/fifo', 'fifo', None),
], tarfile.PAX_FORMAT))
write('layer/ustar.tar', tar([
    ('.wh.var', 'file', b''),
    ('var/', 'dir', None),
    ('etc/passwd', 'dir', None),
    ('usr/lib/libc.so', 'sym', '/lib/libc.so.6'),
], tarfile.USTAR_FORMAT))
# Refused: a write through the symlink lib, a hard link out of the tree.
write('layer/hostile.tar', tar([
    ('lib/.wh..wh..opq', 'file', b''),
    ('lib/x', 'file', b'x'),
    ('h', 'hard', '../etc/shadow'),
]))

# oci: see fuzz/src/image.rs for the format (@N digest, #N size, ^N hex).
def j(obj):
    # Sizes are numbers: "#N" placeholders lose their quotes.
    text = json.dumps(obj).encode()
    for n in range(1, 10):
        text = text.replace(b'"#%d"' % n, b'#%d' % n)
    return text

LAYER_T = 'application/vnd.oci.image.layer.v1.tar'
layer = tar([('bin', 'dir', None), ('bin/sh', 'file', b'#!\n'), ('bin/ls', 'hard', 'bin/sh'),
             ('etc/passwd', 'file', b'root:x:0:0::/root:/bin/sh\n')])
layer2 = tar([('bin/.wh.ls', 'file', b''), ('etc/.wh..wh..opq', 'file', b''),
              ('etc/group', 'file', b'root:x:0:\n')])

def config(diff_ids):
    return j({"architecture": "amd64", "os": "linux",
              "config": {"Entrypoint": ["/bin/sh"], "Cmd": ["-c", "true"], "Env": ["PATH=/bin"],
                         "WorkingDir": "/", "User": "0:0"},
              "history": [{"created_by": "fuzz seed"}],
              "rootfs": {"type": "layers", "diff_ids": diff_ids}})

def manifest(cfg, layers):
    return j({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
              "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                         "digest": "@%d" % cfg, "size": "#%d" % cfg},
              "layers": [{"mediaType": LAYER_T, "digest": "@%d" % n, "size": "#%d" % n} for n in layers]})

index = j({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": "@1", "size": "#1",
    "annotations": {"org.opencontainers.image.ref.name": "latest"}}]})
for transport in ['oci', 'oci-archive']:
    write('oci/%s.txt' % transport, transport.encode() + b'\n' + SEP.join(
        [index, manifest(2, [3, 4]), config(["@3", "@4"]), layer, layer2]))
# A nested index: index.json -> image index -> the linux/amd64 manifest.
nested = j({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": "@2", "size": "#2",
                           "platform": {"os": "linux", "architecture": "amd64"}}]})
index1 = j({"schemaVersion": 2, "manifests": [{
    "mediaType": "application/vnd.oci.image.index.v1+json", "digest": "@1", "size": "#1"}]})
write('oci/nested.txt', b'oci\n' + SEP.join(
    [index1, nested, manifest(3, [4]), config(["@4"]), layer]))
# docker-archive: manifest.json names blobs by path.
dm = j([{"Config": "blobs/sha256/^1", "RepoTags": ["img:latest"],
         "Layers": ["blobs/sha256/^2", "blobs/sha256/^3"]}])
write('oci/docker-archive.txt', b'docker-archive\n' + SEP.join(
    [dm, config(["@2", "@3"]), layer, layer2]))
