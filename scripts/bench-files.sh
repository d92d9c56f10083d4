# shellcheck shell=bash disable=SC2154 # n, reps, tar_opts, untar_opts: set by bench.sh
# `scripts/bench.sh --files N`: issue #9's many-small-files benchmark, sourced by bench.sh
# (which defines n, reps, tar_opts, untar_opts, now, since, median, rss_mib, fresh).
#
# The tree: N small text files from `scripts/bench-files.py gen` (directories of 1,000
# files, 0-3 KB, seeded: the same bytes, modes and mtimes every run). It is generated
# once into $TMPDIR/imgport-bench-files.N.<generator hash>/tree and reused by later runs
# (delete that directory to regenerate; a changed generator gets a new one).
#
# What runs: `scripts/sample-mn.sh` makes a scratch MN with the statelite image
# rhels8.5.0-x86_64-statelite-compute; its rootimg is replaced by the cached tree (a
# rename, untimed; renamed back at exit) and its kernel and initrd by a few bytes, so
# the bundle is the tree plus a few KB and its size compares with the peer's. Then, with
# the real CLI built by `cargo build --release --locked`, interleaved, BENCH_REPS times:
#   export:  imgport --root MN export IMG B.tgz     vs  tar -c rootimg | pigz -p N -6
#   import:  imgport --root FRESH import B.tgz      vs  pigz -dc | tar -x -C FRESH
#   reads:   imgport verify B.tgz, verify --against (the last imgport restore),
#            imgport cat B.tgz <last file of the last directory>  vs  tar -xzf x -O <it>,
#            imgport ls B.tgz
# with peak RSS from /usr/bin/time -v. The index size is read from the bundle and tree
# footers (bench-files.py index). Everything lives under TMPDIR: on tmpfs each finished
# restore is deleted at once (RAM is the limit there; tmpfs has no recently-deleted-inode
# cost), on other filesystems restores are renamed aside and deleted after all timing.
# Space for 10^6 files: a tree takes ~3.5 GB (every file uses a 4 KiB page or block) and
# 1 M inodes; tmpfs holds the source, the kept restore and the one in progress (~11 GB),
# ext4 the source and 2 * BENCH_REPS restores (~25 GB, 7 M inodes with the default 3).
# The peer's size varies a little between runs and filesystems: GNU tar --posix stores
# every file's atime and ctime, in nanoseconds, in its pax header.
#
# Prints issue #9's table (figure | imgport | peer | ratio) and writes the same figures,
# with every run, as TSV to BENCH_TSV (default target/bench-files-N.tsv). BENCH_KEEP=DIR
# keeps the two bundles in DIR, e.g. to profile `imgport verify` on them afterwards.

files_mode() {
    local nfiles=$1
    case $nfiles in
    '' | *[!0-9]* | 0)
        echo "usage: scripts/bench.sh --files N   (N > 0 files)" >&2
        exit 2
        ;;
    esac
    command -v python3 >/dev/null || { echo "bench --files needs python3" >&2; exit 1; }
    cargo build --release --locked --quiet
    local bin=$PWD/target/release/imgport
    local img=rhels8.5.0-x86_64-statelite-compute
    local tsv=${BENCH_TSV:-$PWD/target/bench-files-$nfiles.tsv}
    local rev
    rev=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
    [ -z "$(git status --porcelain --untracked-files=no 2>/dev/null)" ] || rev="$rev+dirty"

    # The cached tree, keyed by N and the generator's bytes.
    local tmp=${TMPDIR:-/tmp} key cache gen_s=cached gen_note
    key=$(sha256sum scripts/bench-files.py | cut -c1-12)
    cache=$tmp/imgport-bench-files.$nfiles.$key
    # The source tree, imgport's restore and tar's restore live at once: about 3N
    # inodes. A tmpfs has few by default (half the RAM's pages): fail now, not after
    # minutes of generating. "-" or 0 free means unlimited.
    local free_inodes need
    free_inodes=$(df -Pi "$tmp" | awk 'NR == 2 { print $4 }')
    need=$((nfiles * 2 + 50000))
    [ -e "$cache/done" ] || need=$((need + nfiles))
    if [[ "$free_inodes" =~ ^[0-9]+$ ]] && [ "$free_inodes" -gt 0 ] && [ "$free_inodes" -lt "$need" ]; then
        echo "$tmp has $free_inodes free inodes, the run needs about $need: use a bigger" \
            "filesystem, e.g. mount -t tmpfs -o size=20G,nr_inodes=0 tmpfs /mnt/benchfs" \
            "and TMPDIR=/mnt/benchfs" >&2
        exit 1
    fi
    if [ ! -e "$cache/done" ] || [ ! -d "$cache/tree" ]; then
        rm -rf "$cache"
        mkdir -p "$cache"
        echo "generating $nfiles files into $cache/tree (kept for later runs)" >&2
        local t
        t=$(now)
        python3 scripts/bench-files.py gen "$nfiles" "$cache/tree"
        gen_s=$(since "$t")
        touch "$cache/done"
        echo "generated in $gen_s s" >&2
    else
        echo "reusing the tree cached in $cache (delete it to regenerate)" >&2
    fi

    if [ "$gen_s" = cached ]; then gen_note="cached tree"; else gen_note="generated in $gen_s s"; fi

    work=$(mktemp -d)
    local mn=$work/mn
    local rootimg=$mn/install/netboot/rhels8.5.0/x86_64/compute/rootimg
    # The cached tree goes back to the cache before the scratch directory is deleted.
    # shellcheck disable=SC2064 # expand now: these locals are gone when the trap runs
    trap "[ -d '$rootimg' ] && mv '$rootimg' '$cache/tree'; rm -rf '$work'" EXIT
    mkdir -p "$work/out" "$work/trash"
    bash scripts/sample-mn.sh "$mn" "$bin" >/dev/null
    rm -rf "$rootimg"
    mv "$cache/tree" "$rootimg"
    printf 'bench kernel\n' >"$mn/install/netboot/rhels8.5.0/x86_64/compute/kernel"
    printf 'bench initrd\n' >"$mn/install/netboot/rhels8.5.0/x86_64/compute/initrd-statelite.gz"

    local fstype
    fstype=$(findmnt -n -o FSTYPE --target "$work" 2>/dev/null | tail -n 1)
    # shellcheck disable=SC2317 # called indirectly below
    drop() {
        if [ "$fstype" = tmpfs ]; then rm -rf "$1"; else mv "$1" "$work/trash/"; fi
    }
    local dir last
    dir=$(find "$rootimg" -mindepth 1 -maxdepth 1 -type d | sort | tail -n 1)
    last=$(find "$dir" -mindepth 1 -maxdepth 1 -type f | sort | tail -n 1)
    local one=rootimg/${last#"$rootimg"/}
    local bundle=$work/out/imgport.tgz peer=$work/out/pigz.tgz
    local q=(-q --threads "$n")
    local -a ex_a ex_b ex_ra ex_c im_a im_b im_ra im_c ve_a ve_r ve_c va_a va_r va_c
    local -a ca_a ca_r ca_c ca_b ls_a ls_r ls_c
    local t d keep='' i
    # How many cores a run kept busy (user + sys over wall, as /usr/bin/time -v says).
    cpu_pct() { awk -F': ' '/Percent of CPU/ { sub(/%/, "", $2); print $2 }' "$1"; }

    echo "$(date +%T) export: $reps x (imgport, tar|pigz -p $n -6)" >&2
    for i in $(seq "$reps"); do
        rm -f "$bundle" "$peer"
        sync
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" --root "$mn" export "$img" "$bundle"
        ex_a+=("$(since "$t")")
        ex_ra+=("$(rss_mib "$work/time")")
        ex_c+=("$(cpu_pct "$work/time")")
        sync
        t=$(now)
        tar "${tar_opts[@]}" -C "$(dirname "$rootimg")" -cf - rootimg | pigz -p "$n" -6 >"$peer"
        ex_b+=("$(since "$t")")
    done

    echo "$(date +%T) import: $reps x (imgport into a fresh MN, pigz -dc | tar -x into a fresh dir)" >&2
    for i in $(seq "$reps"); do
        d=$(fresh)
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" --root "$d" import "$bundle"
        im_a+=("$(since "$t")")
        im_ra+=("$(rss_mib "$work/time")")
        im_c+=("$(cpu_pct "$work/time")")
        # The last restore stays for verify --against.
        if [ "$i" -eq "$reps" ]; then keep=$d; else drop "$d"; fi
        d=$(fresh)
        t=$(now)
        pigz -dc "$peer" | tar "${untar_opts[@]}" -xf - -C "$d"
        im_b+=("$(since "$t")")
        drop "$d"
    done
    local restored=$keep/install/netboot/rhels8.5.0/x86_64/compute/rootimg

    echo "$(date +%T) reads: $reps x (verify, verify --against, cat, tar -xzf one file, ls)" >&2
    for i in $(seq "$reps"); do
        sync
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" verify "$bundle" >/dev/null
        ve_a+=("$(since "$t")")
        ve_r+=("$(rss_mib "$work/time")")
        ve_c+=("$(cpu_pct "$work/time")")
        sync
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" verify "$bundle" \
            --against "$restored" >/dev/null
        va_a+=("$(since "$t")")
        va_r+=("$(rss_mib "$work/time")")
        va_c+=("$(cpu_pct "$work/time")")
        sync
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" cat "$bundle" "$one" >"$work/cat.out"
        ca_a+=("$(since "$t")")
        ca_r+=("$(rss_mib "$work/time")")
        ca_c+=("$(cpu_pct "$work/time")")
        sync
        t=$(now)
        tar -xzf "$peer" -O "$one" >"$work/tar.out"
        ca_b+=("$(since "$t")")
        sync
        t=$(now)
        /usr/bin/time -v -o "$work/time" "$bin" "${q[@]}" ls "$bundle" >"$work/ls.out"
        ls_a+=("$(since "$t")")
        ls_r+=("$(rss_mib "$work/time")")
        ls_c+=("$(cpu_pct "$work/time")")
    done

    echo "$(date +%T) checks and sizes" >&2
    # Untimed checks that every side did the whole job.
    cmp -s "$work/cat.out" "$last" || { echo "imgport cat $one differs from the tree" >&2; exit 1; }
    cmp -s "$work/tar.out" "$last" || { echo "tar -xzf $one differs from the tree" >&2; exit 1; }
    local entries file_bytes tar_bytes listed
    read -r entries file_bytes < <("$bin" --json inspect "$bundle" | python3 -c \
        'import json, sys; t = json.load(sys.stdin)["tree"]; print(t["entries"], t["file_bytes"])')
    listed=$(wc -l <"$work/ls.out")
    [ "$listed" -eq "$entries" ] || { echo "ls listed $listed of $entries entries" >&2; exit 1; }
    tar_bytes=$(pigz -dc "$peer" | wc -c)
    local bundle_bytes peer_bytes tree_bytes index_bytes
    bundle_bytes=$(stat -c %s "$bundle")
    peer_bytes=$(stat -c %s "$peer")
    read -r tree_bytes index_bytes < <(python3 scripts/bench-files.py index "$bundle")
    rm -rf "$work/trash" "$keep"

    local ea eb ia ib va vaa ca cb la
    ea=$(median "${ex_a[@]}") eb=$(median "${ex_b[@]}")
    ia=$(median "${im_a[@]}") ib=$(median "${im_b[@]}")
    va=$(median "${ve_a[@]}") vaa=$(median "${va_a[@]}")
    ca=$(median "${ca_a[@]}") cb=$(median "${ca_b[@]}") la=$(median "${ls_a[@]}")
    local rex rim rve rva rca rls
    rex=$(median "${ex_ra[@]}") rim=$(median "${im_ra[@]}")
    rve=$(median "${ve_r[@]}") rva=$(median "${va_r[@]}")
    rca=$(median "${ca_r[@]}") rls=$(median "${ls_r[@]}")
    mb() { awk -v b="$1" 'BEGIN { printf "%.2f MB", b / 1e6 }'; }
    # imgport / peer, and how that reads (2 decimals; "faster" when under 1).
    ratio() {
        awk -v a="$1" -v b="$2" -v w="${3-faster}" 'BEGIN {
            if (b <= 0) { print "-"; exit }
            r = a / b
            if (w == "") printf "%.4f", r
            else if (r < 1) printf "%.2f (%.2f× %s)", r, 1 / r, w
            else printf "%.2f (%.2f× %s)", r, r, (w == "faster" ? "slower" : w)
        }'
    }
    pct() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.1f %%", 100 * a / b }'; }

    echo
    echo "tree: $nfiles files, $entries entries, $(mb "$file_bytes") of file data," \
        "$(mb "$tar_bytes") of tar ($gen_note)"
    echo "on $fstype ($work), $n threads, medians of $reps interleaved runs;" \
        "imgport $rev; ratio = imgport / peer"
    echo
    echo "| figure at $nfiles small files | imgport | peer | ratio |"
    echo "|---|---|---|---|"
    echo "| bundle size | $(mb "$bundle_bytes") | $(mb "$peer_bytes") (tar \\| pigz -6) | $(ratio "$bundle_bytes" "$peer_bytes" "") |"
    echo "| of which the tree index | $(mb "$index_bytes") ($(pct "$index_bytes" "$tree_bytes") of the tree) | none | |"
    echo "| export wall time | $ea s | $eb s (tar \\| pigz -p $n -6) | $(ratio "$ea" "$eb") |"
    echo "| import wall time | $ia s | $ib s (pigz -dc \\| tar -x) | $(ratio "$ia" "$ib") |"
    echo "| \`verify\` wall time / peak RSS | $va s / $rve MiB | (import: $ia s) | $(ratio "$va" "$ia") |"
    echo "| \`verify --against\` wall time / peak RSS | $vaa s / $rva MiB | (import: $ia s) | $(ratio "$vaa" "$ia") |"
    echo "| \`cat\` of one file: time / peak RSS | $ca s / $rca MiB | \`tar -xzf x one-file\`: $cb s | $(ratio "$ca" "$cb") |"
    echo "| \`ls\` of everything | $la s / $rls MiB | | |"
    echo "| export / import peak RSS | $rex MiB / $rim MiB | | |"
    echo
    echo "the tree: $(mb "$tree_bytes") in the bundle; cat read $one"
    echo "CPU % (user+sys over wall): export $(median "${ex_c[@]}"), import $(median "${im_c[@]}")," \
        "verify $(median "${ve_c[@]}"), --against $(median "${va_c[@]}"), cat $(median "${ca_c[@]}")," \
        "ls $(median "${ls_c[@]}")"
    echo "runs (s): export ${ex_a[*]} | ${ex_b[*]}; import ${im_a[*]} | ${im_b[*]};" \
        "verify ${ve_a[*]}; --against ${va_a[*]}; cat ${ca_a[*]} | ${ca_b[*]}; ls ${ls_a[*]}"

    {
        printf 'figure\timgport\tpeer\tunit\timgport_runs\tpeer_runs\n'
        printf 'files\t%s\t\tcount\t\t\n' "$nfiles"
        printf 'entries\t%s\t\tcount\t\t\n' "$entries"
        printf 'file_data\t%s\t\tbytes\t\t\n' "$file_bytes"
        printf 'tar\t%s\t\tbytes\t\t\n' "$tar_bytes"
        printf 'bundle_size\t%s\t%s\tbytes\t\t\n' "$bundle_bytes" "$peer_bytes"
        printf 'tree_size\t%s\t\tbytes\t\t\n' "$tree_bytes"
        printf 'index_size\t%s\t\tbytes\t\t\n' "$index_bytes"
        printf 'export_time\t%s\t%s\ts\t%s\t%s\n' "$ea" "$eb" "${ex_a[*]}" "${ex_b[*]}"
        printf 'import_time\t%s\t%s\ts\t%s\t%s\n' "$ia" "$ib" "${im_a[*]}" "${im_b[*]}"
        printf 'verify_time\t%s\t\ts\t%s\t\n' "$va" "${ve_a[*]}"
        printf 'verify_against_time\t%s\t\ts\t%s\t\n' "$vaa" "${va_a[*]}"
        printf 'cat_time\t%s\t%s\ts\t%s\t%s\n' "$ca" "$cb" "${ca_a[*]}" "${ca_b[*]}"
        printf 'ls_time\t%s\t\ts\t%s\t\n' "$la" "${ls_a[*]}"
        printf 'export_rss\t%s\t\tMiB\t%s\t\n' "$rex" "${ex_ra[*]}"
        printf 'import_rss\t%s\t\tMiB\t%s\t\n' "$rim" "${im_ra[*]}"
        printf 'verify_rss\t%s\t\tMiB\t%s\t\n' "$rve" "${ve_r[*]}"
        printf 'verify_against_rss\t%s\t\tMiB\t%s\t\n' "$rva" "${va_r[*]}"
        printf 'cat_rss\t%s\t\tMiB\t%s\t\n' "$rca" "${ca_r[*]}"
        printf 'ls_rss\t%s\t\tMiB\t%s\t\n' "$rls" "${ls_r[*]}"
        printf 'export_cpu\t%s\t\t%%\t%s\t\n' "$(median "${ex_c[@]}")" "${ex_c[*]}"
        printf 'import_cpu\t%s\t\t%%\t%s\t\n' "$(median "${im_c[@]}")" "${im_c[*]}"
        printf 'verify_cpu\t%s\t\t%%\t%s\t\n' "$(median "${ve_c[@]}")" "${ve_c[*]}"
        printf 'verify_against_cpu\t%s\t\t%%\t%s\t\n' "$(median "${va_c[@]}")" "${va_c[*]}"
        printf 'cat_cpu\t%s\t\t%%\t%s\t\n' "$(median "${ca_c[@]}")" "${ca_c[*]}"
        printf 'ls_cpu\t%s\t\t%%\t%s\t\n' "$(median "${ls_c[@]}")" "${ls_c[*]}"
        printf 'meta\t%s\t\t\t%s\t\n' "fs=$fstype threads=$n reps=$reps" "imgport=$rev gen_s=$gen_s"
    } >"$tsv"
    echo "figures as TSV: $tsv"
    if [ -n "${BENCH_KEEP:-}" ]; then
        mkdir -p "$BENCH_KEEP"
        mv "$bundle" "$peer" "$BENCH_KEEP/"
        echo "bundles kept in $BENCH_KEEP (imgport.tgz, pigz.tgz), for profiling" >&2
    fi
}
