#!/usr/bin/env python3
"""Helpers for `scripts/bench.sh --files N` (issue #9's many-small-files benchmark).

  bench-files.py gen N DIR    write the tree of N small text files into DIR (must not exist)
  bench-files.py index BUNDLE print the tree's bytes and its index's bytes in a bundle

gen: N files in directories of 1,000 (d0000/f000 ...; 10^6 gives 1,000 directories of
1,000), sizes 0 to 3,072 bytes skewed toward small ones (3072 * u^3.75, mean about
647 bytes, so 10^6 files hold about 646 MB as the tree issue #9 was measured on), of
compressible text: slices of a 4 MiB corpus of Zipf-distributed pseudo-words. The
generator is seeded and sets modes and mtimes itself, so every run writes the same
bytes, the same metadata and therefore the same tar; slices start at random corpus
offsets far apart, so no file repeats another within deflate's 32 KiB window.

index: reads the bundle footer (FORMAT.md section 1.1) and the rootimgtree.gz footer
(section 2.2, v2 or v1) with a few seeks, and prints `TREE_BYTES INDEX_BYTES`, where INDEX_BYTES
is everything from the first index member to the end of the tree (index members and
footer), i.e. what the index adds to the compressed tree.
"""

import os
import random
import struct
import sys

FILES_PER_DIR = 1000
MAX_SIZE = 3072
SIZE_SKEW = 3.75
CORPUS_BYTES = 4 << 20
SEED = 20261201
# Fixed times (2024-01-02 03:04:05 UTC) so trees made on different days archive alike.
MTIME_NS = 1704164645 * 10**9


def corpus(rng):
    """4 MiB of lines of pseudo-words; word frequencies follow Zipf's law like text."""
    syll = ["ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "xe", "zu", "bra", "cle",
            "dri", "fon", "gar", "hul", "jin", "kor", "lum", "mar", "nix", "pel", "quo",
            "ros", "sto", "tra", "ulm", "ven", "wid", "yar"]
    words = sorted({"".join(rng.choice(syll) for _ in range(rng.randint(1, 4)))
                    for _ in range(6000)})
    rng.shuffle(words)
    cum, total = [], 0.0
    for r in range(len(words)):
        total += 1.0 / (r + 1)
        cum.append(total)
    out, size = [], 0
    while size < CORPUS_BYTES:
        line = " ".join(rng.choices(words, cum_weights=cum, k=rng.randint(3, 14)))
        if rng.random() < 0.3:
            line = "%s = %d" % (line, rng.randint(0, 99999))
        out.append(line)
        size += len(line) + 1
    return ("\n".join(out) + "\n").encode()[:CORPUS_BYTES]


def gen(n, top):
    rng = random.Random(SEED)
    text = corpus(rng)
    os.umask(0o022)
    os.mkdir(top, 0o755)
    ndirs = (n + FILES_PER_DIR - 1) // FILES_PER_DIR
    dwidth = max(4, len(str(ndirs - 1)))
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    left = n
    for d in range(ndirs):
        dname = "d%0*d" % (dwidth, d)
        os.mkdir(os.path.join(top, dname), 0o755)
        dfd = os.open(os.path.join(top, dname), os.O_RDONLY | os.O_DIRECTORY)
        for f in range(min(left, FILES_PER_DIR)):
            size = int(MAX_SIZE * rng.random() ** SIZE_SKEW)
            at = rng.randrange(CORPUS_BYTES - MAX_SIZE)
            fd = os.open("f%03d" % f, flags, 0o644, dir_fd=dfd)
            if size:
                os.write(fd, text[at:at + size])
            os.utime(fd, ns=(MTIME_NS, MTIME_NS))
            os.close(fd)
        left -= FILES_PER_DIR
        os.utime(dfd, ns=(MTIME_NS, MTIME_NS))
        os.close(dfd)
    os.utime(top, ns=(MTIME_NS, MTIME_NS))


def index_bytes(bundle):
    """(tree bytes, index bytes) of the statelite tree in a bundle (gzip tree only)."""
    with open(bundle, "rb") as f:
        f.seek(-62, os.SEEK_END)
        tail = f.read(62)
        if tail[12:14] != b"IB" or tail[16:24] != b"IMGPBND1":
            sys.exit("%s: no imgport bundle footer (no statelite tree?)" % bundle)
        member_offset, data_skip, tree_len, block = struct.unpack_from("<QQQI", tail, 24)

        def tree_read(x, n):
            out = b""
            while n:
                u = data_skip + x
                take = min(n, block - u % block)
                f.seek(member_offset + 10 + (u // block) * (block + 5) + 5 + u % block)
                out += f.read(take)
                x, n = x + take, n - take
            return out

        # FORMAT.md 2.2: a 74-byte v2 footer, or a 66-byte v1 one; both start their
        # payload with the magic and the index offset.
        for size, magic in ((74, b"IMGPTRE2"), (66, b"IMGPTRE1")):
            foot = tree_read(tree_len - size, size)
            if foot[12:14] == b"IF" and foot[16:24] == magic:
                break
        else:
            sys.exit("%s: the tree has no imgport gzip index footer" % bundle)
        (index_offset,) = struct.unpack_from("<Q", foot, 24)
        return tree_len, tree_len - index_offset


def main():
    if len(sys.argv) == 4 and sys.argv[1] == "gen":
        gen(int(sys.argv[2]), sys.argv[3])
    elif len(sys.argv) == 3 and sys.argv[1] == "index":
        print("%d %d" % index_bytes(sys.argv[2]))
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
