#!/usr/bin/env bash
# Makes a real OCI image layout holding Debian's static busybox, with umoci.
#   scripts/make-busybox-image.sh LAYOUT_DIR [TAG]
# The image: /bin/busybox plus a symlink per applet, /etc/passwd and /etc/group
# (root and nobody), PATH set, Cmd ["sh"]. Used by the example pod and the tests.
set -euo pipefail
layout=${1:?usage: make-busybox-image.sh LAYOUT_DIR [TAG]}
tag=${2:-latest}
busybox=${BUSYBOX:-/bin/busybox}
[ -x "$busybox" ] || { echo "make-busybox-image: $busybox missing: apt-get install busybox-static" >&2; exit 1; }
command -v umoci >/dev/null || { echo "make-busybox-image: umoci missing: apt-get install umoci" >&2; exit 1; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
rm -rf "$layout.tmp"
umoci init --layout "$layout.tmp"
umoci new --image "$layout.tmp:$tag"
umoci unpack --image "$layout.tmp:$tag" "$work/bundle" >/dev/null
root=$work/bundle/rootfs
mkdir -p "$root/bin" "$root/etc" "$root/tmp" "$root/root" "$root/home/nobody"
chmod 1777 "$root/tmp"
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
  [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home/nobody:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
umoci repack --image "$layout.tmp:$tag" "$work/bundle" >/dev/null
umoci config --image "$layout.tmp:$tag" --tag "$tag" \
  --config.env PATH=/usr/local/bin:/usr/bin:/bin --config.cmd sh --config.workingdir / >/dev/null
umoci gc --layout "$layout.tmp"
rm -rf "$layout"
mv "$layout.tmp" "$layout"
