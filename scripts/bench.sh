#!/usr/bin/env bash
# Compares imgport with the usual shell tools, in one run. Two modes:
#
# scripts/bench.sh [TREE_DIR]   the tree engine (examples/tree) on TREE_DIR or a generated
#                               ~64 MiB tree:
#   export: imgport (examples/tree export)   vs  tar | pigz -p N -6
#   import: imgport (examples/tree import)   vs  pigz -dc | tar -x   and   tar -xf (plain tar)
#   and imgport's two codecs: gzip (rootimgtree.gz) vs --codec zstd (rootimgtree.zst)
#
# scripts/bench.sh --files N    the real CLI (target/release/imgport) on a statelite image
#                               whose rootimg is N small text files (issue #9's tree: for
#                               10^6, 1,000 directories of 1,000 files of 0-3 KB), every
#                               row of issue #9's first table: bundle and index size,
#                               export, import, verify (and --against), cat of one file,
#                               ls, peak RSS; see files_mode below.
#
# Runs are interleaved (A B A B ...) with 3 repetitions, so drift on a shared machine
# hits both sides alike; the table shows medians. Restores go into fresh directories on
# the same filesystem; finished ones are renamed aside and deleted only after all
# timing (extracting right after an rm -rf is many times slower on these disks), and
# every timed run starts after an untimed `sync`, so the writeback of one run's 1 GB
# does not land on whichever run follows it.
#
# The tar side uses the same fidelity imgport archives with (pax, xattrs, ACLs, sparse,
# numeric owners), so both do the same work.
#
# usage: scripts/bench.sh [TREE_DIR]   (default: a generated ~64 MiB tree)
#        scripts/bench.sh --files N
# env:   BENCH_THREADS (default nproc), BENCH_REPS (default 3), TMPDIR (scratch: all
#        trees, bundles and restores go there, so TMPDIR=/dev/shm measures on tmpfs and
#        TMPDIR=/var/tmp, or any directory on the disk, on ext4; the header says which)
# Needs root for a faithful restore (owners, devices); installs pigz and time if missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v pigz >/dev/null || need+=(pigz)
[ -x /usr/bin/time ] || need+=(time)
if [ ${#need[@]} -gt 0 ]; then
    echo "installing ${need[*]}" >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q "${need[@]}" >&2
fi

n=${BENCH_THREADS:-$(nproc)}
reps=${BENCH_REPS:-3}
tar_opts=(--posix --xattrs --xattrs-include='*' --acls -S --numeric-owner)
untar_opts=(--xattrs --xattrs-include='*' --acls --numeric-owner -p)

# now_ns; elapsed seconds since $1 (ns) with millisecond precision.
now() { date +%s%N; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.3f", (b - a) / 1e9 }'; }
median() { printf '%s\n' "$@" | sort -g | awk '{ v[NR] = $1 } END { print v[int((NR + 1) / 2)] }'; }
rss_mib() { awk '/Maximum resident set size/ { printf "%.1f", $NF / 1024 }' "$1"; }
fresh() { local d=$work/dest.$RANDOM$RANDOM; mkdir "$d"; sync; echo "$d"; }
aside() { mv "$1" "$work/trash/$(basename "$1")"; }

if [ "${1:-}" = --files ]; then
    # shellcheck source=scripts/bench-files.sh
    . scripts/bench-files.sh
    files_mode "${2:-}"
    exit
fi

cargo build --release --quiet --example tree
bin=$PWD/target/release/examples/tree

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/out" "$work/trash"
if [ $# -ge 1 ]; then
    src=$(realpath "$1")
else
    src=$work/rootimg
    "$bin" gen "$src" 2>/dev/null
fi

# One untimed read of the tree first: otherwise the first timed export (imgport's)
# alone pays for a page cache that other work emptied (seen: 1.8 s against 1.2-1.3 s).
tar -C "$(dirname "$src")" -cf - "$(basename "$src")" 2>/dev/null | cat >/dev/null

declare -a exp_a exp_b exp_z imp_a imp_b imp_c imp_z
exp_rss=0 imp_rss=0 exp_rss_z=0 imp_rss_z=0
echo "export: $reps x (imgport, tar|pigz, imgport zstd), $n threads" >&2
for _ in $(seq "$reps"); do
    sync
    t=$(now)
    /usr/bin/time -v -o "$work/time.exp" "$bin" export "$src" "$work/out/imgport.tgz" \
        --threads "$n" 2>"$work/exp.log"
    exp_a+=("$(since "$t")")
    exp_rss=$(rss_mib "$work/time.exp")
    sync
    t=$(now)
    tar "${tar_opts[@]}" -C "$(dirname "$src")" -cf - "$(basename "$src")" 2>/dev/null \
        | pigz -p "$n" -6 >"$work/out/pigz.tgz"
    exp_b+=("$(since "$t")")
    sync
    t=$(now)
    /usr/bin/time -v -o "$work/time.expz" "$bin" export "$src" "$work/out/imgport.zst" \
        --threads "$n" --codec zstd 2>"$work/expz.log"
    exp_z+=("$(since "$t")")
    exp_rss_z=$(rss_mib "$work/time.expz")
done
# The plain tar for `tar -xf` (not timed).
pigz -dc "$work/out/pigz.tgz" >"$work/out/plain.tar"

echo "import: $reps x (imgport, pigz -dc|tar -x, tar -xf, imgport zstd)" >&2
for _ in $(seq "$reps"); do
    d=$(fresh)
    t=$(now)
    /usr/bin/time -v -o "$work/time.imp" "$bin" import "$work/out/imgport.tgz" "$d" \
        --threads "$n" 2>"$work/imp.log"
    imp_a+=("$(since "$t")")
    imp_rss=$(rss_mib "$work/time.imp")
    aside "$d"
    d=$(fresh)
    t=$(now)
    pigz -dc "$work/out/pigz.tgz" | tar "${untar_opts[@]}" -xf - -C "$d"
    imp_b+=("$(since "$t")")
    aside "$d"
    d=$(fresh)
    t=$(now)
    tar "${untar_opts[@]}" -xf "$work/out/plain.tar" -C "$d"
    imp_c+=("$(since "$t")")
    aside "$d"
    d=$(fresh)
    t=$(now)
    /usr/bin/time -v -o "$work/time.impz" "$bin" import "$work/out/imgport.zst" "$d" \
        --threads "$n" 2>"$work/impz.log"
    imp_z+=("$(since "$t")")
    imp_rss_z=$(rss_mib "$work/time.impz")
    aside "$d"
done
rm -rf "$work/trash"

tar_bytes=$(stat -c %s "$work/out/plain.tar")
size_a=$(stat -c %s "$work/out/imgport.tgz")
size_b=$(stat -c %s "$work/out/pigz.tgz")
size_z=$(stat -c %s "$work/out/imgport.zst")
ez=$(median "${exp_z[@]}") iz=$(median "${imp_z[@]}")
ea=$(median "${exp_a[@]}") eb=$(median "${exp_b[@]}")
ia=$(median "${imp_a[@]}") ib=$(median "${imp_b[@]}") ic=$(median "${imp_c[@]}")
mbs() { awk -v b="$tar_bytes" -v s="$1" 'BEGIN { printf "%.0f", b / s / 1e6 }'; }
ratio() { awk -v a="$1" -v b="$2" -v p="${3:-2}" 'BEGIN { printf "%." p "f", a / b }'; }

echo
echo "tree: $src, tar $(awk -v b="$tar_bytes" 'BEGIN { printf "%.1f", b / 1048576 }') MiB;" \
    "$n threads; medians of $reps interleaved runs; MB/s of tar bytes"
echo
echo "| operation | imgport | baseline | baseline command | imgport / baseline time |"
echo "|---|---|---|---|---|"
echo "| export | ${ea} s ($(mbs "$ea") MB/s) | ${eb} s ($(mbs "$eb") MB/s) | tar -c \\| pigz -p $n -6 | $(ratio "$ea" "$eb") |"
echo "| import | ${ia} s ($(mbs "$ia") MB/s) | ${ib} s ($(mbs "$ib") MB/s) | pigz -dc \\| tar -x | $(ratio "$ia" "$ib") |"
echo "| import | ${ia} s ($(mbs "$ia") MB/s) | ${ic} s ($(mbs "$ic") MB/s) | tar -xf (plain tar) | $(ratio "$ia" "$ic") |"
echo
echo "| output | bytes | vs pigz |"
echo "|---|---|---|"
echo "| imgport .tgz | $size_a | $(ratio "$size_a" "$size_b" 4) |"
echo "| tar \\| pigz -6 | $size_b | 1.0000 |"
echo "| plain tar | $tar_bytes | $(ratio "$tar_bytes" "$size_b") |"
echo
echo "imgport's codecs (export --codec gzip, the default, vs --codec zstd at the default level):"
echo
echo "| codec | export | import | tree bytes | vs gzip |"
echo "|---|---|---|---|---|"
echo "| gzip (rootimgtree.gz) | ${ea} s ($(mbs "$ea") MB/s) | ${ia} s ($(mbs "$ia") MB/s) | $size_a | 1.0000 |"
echo "| zstd (rootimgtree.zst) | ${ez} s ($(mbs "$ez") MB/s) | ${iz} s ($(mbs "$iz") MB/s) | $size_z | $(ratio "$size_z" "$size_a" 4) |"
echo
echo "peak RSS: imgport export ${exp_rss} MiB, import ${imp_rss} MiB; zstd export ${exp_rss_z} MiB, import ${imp_rss_z} MiB"
echo "runs (s): export imgport ${exp_a[*]} | pigz ${exp_b[*]} | zstd ${exp_z[*]}; import imgport ${imp_a[*]} | pigz+tar ${imp_b[*]} | tar ${imp_c[*]} | zstd ${imp_z[*]}"
