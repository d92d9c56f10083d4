#!/usr/bin/env bash
# Regenerates the committed seed corpora under fuzz/seeds/<target>/ (each well under
# 50 KiB): a tiny statelite-like tree archived by GNU tar (pax, xattrs, ACLs, sparse),
# by GNU cpio newc (as xCAT's imgexport does), and by the library in the member
# layout with a v2 index (plus the committed v1 tree); plus manifest fixtures.
# Needs root (mknod, chown, trusted.* xattrs).
#
# usage: fuzz/seed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
seeds=$PWD/fuzz/seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# --- the tree: one of each kind restore has to handle ---
r=$work/rootimg
mkdir -p "$r/etc" "$r/usr/bin" "$r/var/lib" "$r/dev" "$r/tmp"
printf 'root:x:0:0:root:/root:/bin/bash\nbin:x:1:1::/:/sbin/nologin\n' >"$r/etc/passwd"
printf 'root:x:0:\nbin:x:1:\n' >"$r/etc/group"
printf 'hello\n' >"$r/etc/motd"
printf '#!/bin/sh\necho ping\n' >"$r/usr/bin/ping"
chmod 4755 "$r/usr/bin/ping"
setcap cap_net_raw+ep "$r/usr/bin/ping" 2>/dev/null || true
setfattr -n user.note -v 'bin\000ary' "$r/etc/motd"
setfattr -n trusted.t -v x "$r/etc/motd" 2>/dev/null || true
setfacl -m u:1234:rw "$r/etc/motd" 2>/dev/null || true
# Sparse: one data block in a 64 KiB file ending in a hole (only the block is
# archived; one block keeps the seeds small).
truncate -s 64K "$r/var/lib/sparse"
printf 'A' | dd of="$r/var/lib/sparse" bs=1 seek=8192 conv=notrunc status=none
long=$r/usr/share/$(printf 'n%.0s' {1..120})
mkdir -p "$r/usr/share" && printf 'long\n' >"$long"
ln -s ../etc/motd "$r/etc/motd.link"
ln -s /nonexistent "$r/tmp/dangling"
ln "$r/etc/motd" "$r/etc/motd.hard"
mknod "$r/dev/null" c 1 3
mknod "$r/dev/sda" b 8 0
mkfifo "$r/dev/initctl"
chown -R 1234:5678 "$r/var"
chmod 1777 "$r/tmp"
# Whole-second times everywhere but one file, so only entries that need a pax header
# (xattrs, ACLs, sparse, nanoseconds) get one and the seeds stay small.
find "$r" -depth -exec touch -h -d @1700000000 {} +
touch -d @1700000000.123456789 "$r/etc/passwd"

rm -rf "$seeds"
mkdir -p "$seeds"/{member_reader,index_reader,tar_entry_decoder,cpio_entry_decoder,restore,manifest_parse}

# GNU tar pax with xattrs, ACLs, sparse 1.0; 512-byte records keep it small.
tar --posix --pax-option=delete=atime,delete=ctime \
    --xattrs --xattrs-include='*' --acls -S --sparse-version=1.0 -b 1 \
    -C "$work" -cf "$seeds/tar_entry_decoder/gnu-pax.tar" rootimg
# Old-GNU format (././@LongLink names, old sparse headers) for the legacy paths.
tar --format=gnu -S -b 1 -C "$work" -cf "$seeds/tar_entry_decoder/gnu-old.tar" \
    rootimg/var rootimg/usr/share
# xCAT's own rootimgtree: find | cpio -H newc -o, hard links with data on the last.
(cd "$work" && find rootimg ! -name sparse | cpio -H newc -o --quiet) >"$seeds/cpio_entry_decoder/xcat-newc.cpio"
(cd "$work" && find rootimg/etc | cpio -H crc -o --quiet) >"$seeds/cpio_entry_decoder/crc.cpio"
cp "$seeds/tar_entry_decoder/gnu-pax.tar" "$seeds/cpio_entry_decoder/xcat-newc.cpio" "$seeds/restore/"

# The member layout and a v2 index, made by the library; the v1 index as a committed
# fixture (no v1 writer is left), so the index reader keeps both versions covered.
cargo run --quiet --example fuzz_seeds -- "$r" "$seeds"
cp tests/fixtures/tree-v1.gz "$seeds/index_reader/tree-v1.gz"
cp tests/fixtures/tree-v1.gz "$seeds/member_reader/tree-v1.gz"

for f in statelite kit2 special seed netboot rawimage; do
    cp "tests/fixtures/manifest/$f.xml" "$seeds/manifest_parse/"
done
du -sb "$seeds"/*
