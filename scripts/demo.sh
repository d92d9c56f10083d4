#!/usr/bin/env bash
# The main job, end to end, on scratch roots: build imgport, create a sample MN with a
# statelite image, export it, import it into a second MN under a new profile, and show
# that the root tree came back bit-exact (owners, xattrs, capabilities, devices, holes).
#
# usage: scripts/demo.sh [WORKDIR]   (default: ./demo; needs root for mknod/chown/setcap)
set -euo pipefail
cd "$(dirname "$0")/.."
work=$(realpath -m "${1:-demo}")
cargo build --release --quiet
bin=$PWD/target/release/imgport
rm -rf "$work" && mkdir -p "$work/mn1" "$work/mn2"
img=rhels8.5.0-x86_64-statelite-compute

echo "== 1. a sample management node under $work/mn1"
bash scripts/sample-mn.sh "$work/mn1" "$bin"

echo "== 2. export (imgport --root mn1 export $img)"
(cd "$work" && "$bin" --root "$work/mn1" export "$img")
ls -l "$work/$img.tgz"
tar -tzvf "$work/$img.tgz"

echo "== 3. import into a second MN as profile compute2"
(cd "$work" && "$bin" --root "$work/mn2" import "$img.tgz" -f compute2)

echo "== 4. the result"
"$bin" --root "$work/mn2" tabdump osimage
"$bin" --root "$work/mn2" tabdump litefile
src=$work/mn1/install/netboot/rhels8.5.0/x86_64/compute/rootimg
dst=$work/mn2/install/netboot/rhels8.5.0/x86_64/compute2/rootimg
echo "rsync -aHAXn differences (none expected):"
rsync -aHAXn --numeric-ids --itemize-changes "$src/" "$dst/"
command -v getcap >/dev/null && getcap "$dst/bin/ping"
stat -c '%n: %b blocks of %B bytes for %s bytes' "$dst/data/sparse.img"
stat -c '%n: %F %t,%T' "$dst/dev/null" "$dst/dev/sda"
echo "demo OK: $work"
