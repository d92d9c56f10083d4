#!/usr/bin/env bash
# Builds an image bundle exactly the way xCAT's imgexport does (imgport.pm make_bundle):
# a mkdtemp staging dir, the payload copied in with plain cp, the statelite tree as
# `find rootimg | cpio -H newc -o | gzip -c`, then `tar czf <bundle> .` from inside
# the staging dir (GNU format, readdir order, ./ names). Used by the tests to prove that
# imgport imports what real xCAT writes.
#
# usage: xcat-bundle.sh OUT.tgz IMG_DIR_NAME MANIFEST.xml [--tree ROOTIMGDIR] [--litefile CSV] [FILE...]
set -euo pipefail
out=$(realpath -m "${1:?usage}"); img=${2:?usage}; manifest=${3:?usage}; shift 3
tree=""; litefile=""
files=()
while [ $# -gt 0 ]; do
  case $1 in
    --tree) tree=$2; shift 2 ;;
    --litefile) litefile=$2; shift 2 ;;
    *) files+=("$1"); shift ;;
  esac
done
stage=$(mktemp -d "${TMPDIR:-/tmp}/imgexport.$$.XXXXXX")
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/$img"
cp "$manifest" "$stage/$img/manifest.xml"
for f in "${files[@]}"; do cp "$f" "$stage/$img/"; done
[ -n "$litefile" ] && cp "$litefile" "$stage/$img/litefile.csv"
if [ -n "$tree" ]; then
  (cd "$tree" && find rootimg | cpio -H newc -o --quiet | gzip -c > "$stage/$img/rootimgtree.gz")
fi
(cd "$stage" && tar czf "$out" .)
