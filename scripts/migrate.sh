#!/usr/bin/env bash
# Moves every osimage from one management node to another, one bundle per image,
# and checks the JSON summaries before calling it done. The two MNs here are
# directories (--root); on real MNs drop --root and add -R user@host, or pipe
# `imgport export IMG -` into `ssh mn2 imgport import -`.
#
# usage: scripts/migrate.sh SRC_ROOT DST_ROOT [WORKDIR]   (IMGPORT=path/to/imgport)
set -euo pipefail
src=${1:?usage: migrate.sh SRC_ROOT DST_ROOT [WORKDIR]}
dst=${2:?usage: migrate.sh SRC_ROOT DST_ROOT [WORKDIR]}
work=${3:-$(mktemp -d)}
imgport=${IMGPORT:-imgport}
mkdir -p "$work"

# 1. Export everything; exit code 6 means some images failed, the rest are there.
set +e
"$imgport" --root "$src" --json --quiet export --all -o "$work" > "$work/export.json"
rc=$?
set -e
python3 - "$work/export.json" "$rc" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
assert doc["command"] == "export" and doc["exit_code"] == int(sys.argv[2])
for img in doc["images"]:
    state = "ok" if img["ok"] else "FAILED: " + "; ".join(img["errors"])
    print(f"exported {img['image']}: {state}")
if doc["failed"]:
    print("not exported:", ", ".join(doc["failed"]))
PY
[ "$rc" = 0 ] || [ "$rc" = 6 ] || exit "$rc"

# 2. Import the bundles that were made, then check every image landed.
bundles=$(python3 -c 'import json,sys; print("\n".join(i["bundle"] for i in json.load(open(sys.argv[1]))["images"] if i["ok"]))' "$work/export.json")
[ -n "$bundles" ] || { echo "nothing to import" >&2; exit 1; }
set +e
# shellcheck disable=SC2086
"$imgport" --root "$dst" --json --quiet import $bundles > "$work/import.json"
rc=$?
set -e
python3 - "$work/import.json" <<'PY'
import json, sys
doc = json.load(open(sys.argv[1]))
for b in doc["bundles"]:
    for img in b["images"]:
        print(f"imported {img['image']} from {b['bundle']}: {'ok' if img['ok'] else 'FAILED'}")
sys.exit(0 if doc["ok"] else 1)
PY
exit "$rc"
