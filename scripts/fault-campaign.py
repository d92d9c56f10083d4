#!/usr/bin/env python3
"""Fault campaign of issue #11 for the kinds tests/crash*.rs do not cover.

Driven by scripts/fault-campaign.sh; see there for usage. Every random choice comes
from one seeded generator per kind, so a seed repeats a run trial for trial (the
kill and race timings repeat as delays, not as the exact instruction they hit).
"""
import copy
import glob
import gzip
import hashlib
import io
import lzma
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tarfile
import time

IMG = "rhels8.5.0-x86_64-statelite-compute"
IMGDIR = "install/netboot/rhels8.5.0/x86_64/compute"
TIMEOUT = 60


class Campaign:
    def __init__(self, imgport, work, seed, repo):
        self.bin = imgport
        self.work = work
        self.seed = seed
        self.repo = repo
        self.n = 0

    # --- helpers -------------------------------------------------------------------
    def run(self, args, root=None, cwd=None, timeout=TIMEOUT):
        cmd = [self.bin] + (["--root", root] if root else []) + list(args)
        try:
            p = subprocess.run(cmd, cwd=cwd or self.work, capture_output=True,
                               timeout=timeout, text=True, errors="replace")
            return p.returncode, p.stdout, p.stderr
        except subprocess.TimeoutExpired:
            return "timeout", "", ""

    def fresh(self, name):
        self.n += 1
        d = os.path.join(self.work, "t", f"{self.n:05d}-{name}")
        os.makedirs(d)
        return d

    def copy_mn(self, src, dst):
        subprocess.run(["cp", "-a", src, dst], check=True)

    @staticmethod
    def state(root):
        """Everything an import may change: paths, types, modes, owners, contents,
        link targets, and the rows of every table file (not their page bytes)."""
        out = {}
        for dp, dns, fns in os.walk(root):
            for name in dns + fns:
                p = os.path.join(dp, name)
                rel = os.path.relpath(p, root)
                st = os.lstat(p)
                if os.path.islink(p):
                    v = ("l", os.readlink(p))
                elif os.path.isdir(p):
                    v = ("d", st.st_mode, st.st_uid, st.st_gid)
                elif os.path.isfile(p) and p.endswith(".sqlite"):
                    v = ("t", Campaign.rows(p))
                elif os.path.isfile(p):
                    h = hashlib.sha256()
                    with open(p, "rb") as f:
                        for chunk in iter(lambda: f.read(1 << 20), b""):
                            h.update(chunk)
                    v = ("f", st.st_mode, st.st_uid, st.st_gid, st.st_size, h.hexdigest())
                else:
                    v = ("o", st.st_mode, st.st_rdev)
                out[rel] = v
        return out

    @staticmethod
    def rows(path):
        con = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            res = []
            for (t,) in con.execute("select name from sqlite_master where type='table'"):
                res.append((t, sorted(map(repr, con.execute(f'select * from "{t}"')))))
            return tuple(res)
        finally:
            con.close()

    @staticmethod
    def leftovers(root):
        bad = []
        for dp, dns, fns in os.walk(root):
            for name in dns + fns:
                if name.startswith((".imgport", ".rootimg.imgport")) or "-journal" in name:
                    bad.append(os.path.relpath(os.path.join(dp, name), root))
        return bad

    @staticmethod
    def panicked(res):
        return res[0] == 101 or "panicked" in res[2]

    @staticmethod
    def diff(a, b):
        ks = sorted(set(a) ^ set(b) | {k for k in set(a) & set(b) if a[k] != b[k]})
        return ks[:5]

    def tally(self, trials, trial):
        """Runs `trial(k)` for k in range(trials); each makes its own directory with
        fresh() and returns (directory, label, problems). A clean trial's directory is
        removed, a bad one kept and reported under its label."""
        counts = {"trials": 0, "clean": 0, "bad": []}
        for k in range(trials):
            d, label, problems = trial(k)
            counts["trials"] += 1
            if problems:
                counts["bad"].append(f"{label}: " + "; ".join(problems))
            else:
                counts["clean"] += 1
                shutil.rmtree(d)
        return counts

    def verify_then_import(self, d, bundle, root):
        """Verifies `bundle`, then imports it into `root` (already made inside `d`), both
        from an empty working directory inside `d`. Returns both results and the
        problems every such trial checks: hangs, panics, writes outside the root."""
        cwd = os.path.join(d, "cwd")
        os.makedirs(cwd)
        outside = sorted(os.listdir(d))
        v = self.run(["verify", bundle], cwd=cwd)
        im = self.run(["-q", "import", bundle], root=root, cwd=cwd)
        problems = []
        for name, res in (("verify", v), ("import", im)):
            if res[0] == "timeout":
                problems.append(f"{name} hung")
            elif self.panicked(res):
                problems.append(f"{name} panicked: {res[2].strip()[-200:]}")
        if sorted(os.listdir(d)) != outside or os.listdir(cwd):
            problems.append("wrote outside the root")
        return v, im, problems

    def export(self, root, dest, extra=()):
        rc, _, err = self.run(["-q", "export", IMG, dest, *extra], root=root)
        if rc != 0:
            sys.exit(f"setup: export failed ({rc}): {err}")

    def setup(self):
        self.mn = os.path.join(self.work, "mn")
        r = subprocess.run(["bash", os.path.join(self.repo, "scripts/sample-mn.sh"),
                            self.mn, self.bin], capture_output=True, text=True)
        if r.returncode != 0:
            sys.exit(f"setup: sample-mn.sh failed: {r.stderr}")
        self.bundle = os.path.join(self.work, "old.tgz")
        self.export(self.mn, self.bundle)
        # A second version of the image: another kernel and 3,000 more files, so an
        # export overlapping its import has a wide window to tear in.
        self.mn2 = os.path.join(self.work, "mn2")
        self.copy_mn(self.mn, self.mn2)
        d = os.path.join(self.mn2, IMGDIR)
        with open(os.path.join(d, "kernel"), "wb") as f:
            f.write(random.Random(self.seed + 7).randbytes(1 << 20))
        for i in range(30):
            sub = os.path.join(d, "rootimg", "usr", "share", f"v2-{i:02d}")
            os.makedirs(sub)
            for j in range(100):
                with open(os.path.join(sub, f"f{j:03d}"), "w") as f:
                    f.write(f"version 2 file {i} {j}\n")
        self.newbundle = os.path.join(self.work, "new.tgz")
        self.export(self.mn2, self.newbundle)
        self.ls_old = self.run(["ls", self.bundle])[1]
        self.ls_new = self.run(["ls", self.newbundle])[1]
        # Calibration: the listing of a re-export after a sequential import must equal
        # the bundle's own, or comparing listings proves nothing.
        cal = os.path.join(self.work, "cal")
        self.copy_mn(self.mn, cal)
        rc, _, err = self.run(["-q", "import", self.newbundle], root=cal)
        if rc != 0:
            sys.exit(f"setup: import of the new version failed: {err}")
        self.export(cal, os.path.join(self.work, "cal.tgz"))
        if self.run(["ls", os.path.join(self.work, "cal.tgz")])[1] != self.ls_new:
            sys.exit("setup: re-exported listing differs from the imported bundle's")
        # Reference states of a clean import (once, and twice) into an empty MN.
        ref = os.path.join(self.work, "ref")
        os.makedirs(ref)
        self.run(["-q", "import", self.bundle], root=ref)
        self.ref1 = self.state(ref)
        self.run(["-q", "import", self.bundle], root=ref)
        self.ref2 = self.state(ref)
        with open(self.bundle, "rb") as f:
            self.bundle_bytes = f.read()
        self.tar_plain = gzip.decompress(self.bundle_bytes)
        self.members = []
        with tarfile.open(fileobj=io.BytesIO(self.tar_plain)) as t:
            for m in t.getmembers():
                self.members.append((m.offset, m.offset_data, m.offset_data + m.size, m.name))
        t0 = time.monotonic()
        self.export(self.mn, os.path.join(self.work, "timing.tgz"))
        self.export_secs = time.monotonic() - t0

    # --- kind 1: corrupt bundles ----------------------------------------------------
    def where(self, data):
        """Names the place of a corruption both verify and import accepted."""
        try:
            plain = gzip.decompress(data)
        except Exception:
            return "gzip framing"
        if plain == self.tar_plain:
            return "gzip header/trailer field"
        i = next((k for k in range(min(len(plain), len(self.tar_plain)))
                  if plain[k] != self.tar_plain[k]), min(len(plain), len(self.tar_plain)))
        for off, data_off, end, name in self.members:
            if off <= i < data_off:
                return f"tar header of {name}"
            if data_off <= i < end:
                return f"data of {name}"
        return "tar padding/end blocks"

    def corrupt(self, trials):
        rng = random.Random(self.seed * 1000 + 1)
        size = len(self.bundle_bytes)
        ignored = {}
        stats = {"verify-only": 0, "both-refuse": 0}
        codes = {}

        def trial(k):
            kind = "flip" if k % 2 == 0 else "trunc"
            off = rng.randrange(size)
            mask = rng.randrange(1, 256)
            data = bytearray(self.bundle_bytes)
            if kind == "flip":
                data[off] ^= mask
                what = f"flip offset={off} xor=0x{mask:02x}"
            else:
                data = data[:off]
                what = f"truncate length={off}"
            d = self.fresh(kind)
            b = os.path.join(d, "b.tgz")
            with open(b, "wb") as f:
                f.write(data)
            root = os.path.join(d, "root")
            os.makedirs(root)
            v, im, problems = self.verify_then_import(d, b, root)
            key = f"{kind} verify {v[0]}/import {im[0]}"
            codes[key] = codes.get(key, 0) + 1
            if im[0] != 0 and v[0] == 0:
                problems.append(f"verify 0 but import refuses ({im[0]})")
            if kind == "trunc":
                if v[0] != 4:
                    problems.append(f"verify exit {v[0]} on a truncation")
                if im[0] != 4:
                    problems.append(f"import exit {im[0]} on a truncation")
            after = self.state(root)
            if im[0] != 0 and after:
                problems.append(f"failed import left {sorted(after)[:5]}")
            if im[0] == 0 and after != self.ref1:
                problems.append(f"import 0 but MN differs from a clean import: {self.diff(after, self.ref1)}")
            if im[0] == 0 and v[0] == 0 and after == self.ref1:
                place = self.where(bytes(data))
                ignored[place] = ignored.get(place, 0) + 1
            elif im[0] == 0:
                stats["verify-only"] += 1
            else:
                stats["both-refuse"] += 1
            return d, f"{what}: verify={v[0]} import={im[0]}", problems

        counts = self.tally(trials, trial)
        note = (f"both refused {stats['both-refuse']}, only verify refused {stats['verify-only']}, "
                f"both accepted {sum(ignored.values())} (" +
                ", ".join(f"{v} {k}" for k, v in sorted(ignored.items())) + "); exits: " +
                ", ".join(f"{k}: {v}" for k, v in sorted(codes.items())))
        return counts, note

    # --- kind 2: kill -9 during export ----------------------------------------------
    def kill_export(self, trials):
        rng = random.Random(self.seed * 1000 + 2)
        with open(self.newbundle, "rb") as f:
            old = f.read()
        killed_after_finish = 0

        def trial(k):
            nonlocal killed_after_finish
            d = self.fresh("kill-export")
            dest = os.path.join(d, "out.tgz")
            had_old = k % 2 == 1
            if had_old:
                with open(dest, "wb") as f:
                    f.write(old)
            delay = rng.uniform(0, self.export_secs * 0.8)
            p = subprocess.Popen([self.bin, "--root", self.mn, "-q", "export", IMG, dest],
                                 stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            time.sleep(delay)
            p.kill()
            rc = p.wait()
            if rc == 0:
                killed_after_finish += 1
            problems = []
            if os.path.exists(dest):
                with open(dest, "rb") as f:
                    now = f.read()
                if not (had_old and now == old):
                    vr = self.run(["verify", dest])[0]
                    if vr != 0:
                        problems.append(f"final name torn after kill (verify {vr})")
            elif had_old:
                problems.append("old bundle vanished")
            rc2, _, err2 = self.run(["-q", "export", IMG, dest], root=self.mn)
            if rc2 != 0:
                problems.append(f"second export exit {rc2}: {err2.strip()[-200:]}")
            elif self.run(["verify", dest])[0] != 0:
                problems.append("second export fails verify")
            temps = [n for n in os.listdir(d) if n.startswith(".imgport-export-")]
            if temps:
                problems.append(f"temp files left after the second export: {temps}")
            return d, f"trial {k} delay={delay:.4f}s old={had_old}", problems

        counts = self.tally(trials, trial)
        return counts, (f"export took ~{self.export_secs:.3f}s; {killed_after_finish} kills came "
                        "after it had finished")

    # --- kind 3: concurrency --------------------------------------------------------
    def start(self, args, root, offset):
        time.sleep(offset)
        return subprocess.Popen([self.bin, "--root", root, *args],
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    def pair(self, rng, a, b):
        """Starts two commands with a random offset between them, waits for both."""
        off = rng.uniform(0, 0.05)
        first, second = (a, b) if rng.random() < 0.5 else (b, a)
        p1 = self.start(*first, 0)
        p2 = self.start(*second, off)
        res = {}
        for p, spec in ((p1, first), (p2, second)):
            try:
                _, err = p.communicate(timeout=TIMEOUT)
                res[id(spec)] = (p.returncode, err)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
                res[id(spec)] = ("timeout", "")
        return res[id(a)], res[id(b)], off, first is a

    def two_imports(self, trials):
        rng = random.Random(self.seed * 1000 + 3)

        def trial(k):
            d = self.fresh("two-imports")
            root = os.path.join(d, "root")
            os.makedirs(root)
            a = (["-q", "import", self.bundle], root)
            b = (["-q", "import", self.bundle], root)
            ra, rb, off, _ = self.pair(rng, a, b)
            problems = [f"import exit {r[0]}: {r[1].strip()[-200:]}" for r in (ra, rb) if r[0] != 0]
            problems += ["panic" for r in (ra, rb) if "panicked" in r[1]]
            st = self.state(root)
            if st != self.ref2:
                problems.append(f"MN differs from two sequential imports: {self.diff(st, self.ref2)}")
            left = self.leftovers(root)
            if left:
                problems.append(f"leftovers {left[:5]}")
            return d, f"trial {k} offset={off:.4f}s", problems

        return self.tally(trials, trial), ""

    def export_vs_import(self, trials):
        rng = random.Random(self.seed * 1000 + 4)
        seen = {"old": 0, "new": 0}
        kern_old = self.member_hash(self.bundle, "kernel")
        kern_new = self.member_hash(self.newbundle, "kernel")

        def trial(k):
            d = self.fresh("export-vs-import")
            root = os.path.join(d, "root")
            self.copy_mn(self.mn, root)
            out = os.path.join(d, "out.tgz")
            e = (["-q", "export", IMG, out], root)
            i = (["-q", "import", self.newbundle], root)
            re_, ri, off, export_first = self.pair(rng, e, i)
            problems = []
            if ri[0] != 0:
                problems.append(f"import exit {ri[0]}: {ri[1].strip()[-200:]}")
            if re_[0] != 0:
                problems.append(f"export exit {re_[0]}: {re_[1].strip()[-200:]}")
            else:
                vr = self.run(["verify", out])[0]
                if vr != 0:
                    problems.append(f"exported bundle fails verify ({vr})")
                ls = self.run(["ls", out])[1]
                kern = self.member_hash(out, "kernel")
                if ls == self.ls_old and kern == kern_old:
                    seen["old"] += 1
                elif ls == self.ls_new and kern == kern_new:
                    seen["new"] += 1
                else:
                    problems.append("torn bundle: tree " +
                                    ("old" if ls == self.ls_old else "new" if ls == self.ls_new else "mixed") +
                                    ", kernel " +
                                    ("old" if kern == kern_old else "new" if kern == kern_new else "other"))
            left = self.leftovers(root)
            if left:
                problems.append(f"leftovers {left[:5]}")
            return d, f"trial {k} offset={off:.4f}s export_first={export_first}", problems

        return self.tally(trials, trial), f"exports wholly old {seen['old']}, wholly new {seen['new']}"

    def two_exports(self, trials):
        rng = random.Random(self.seed * 1000 + 5)

        def trial(k):
            d = self.fresh("two-exports")
            out = os.path.join(d, "out.tgz")
            a = (["-q", "export", IMG, out], self.mn)
            b = (["-q", "export", IMG, out], self.mn)
            ra, rb, off, _ = self.pair(rng, a, b)
            problems = [f"export exit {r[0]}: {r[1].strip()[-200:]}" for r in (ra, rb) if r[0] != 0]
            if self.run(["verify", out])[0] != 0:
                problems.append("final bundle fails verify")
            elif self.run(["ls", out])[1] != self.ls_old:
                problems.append("final bundle lists another tree")
            temps = [n for n in os.listdir(d) if n != "out.tgz"]
            if temps:
                problems.append(f"left {temps}")
            return d, f"trial {k} offset={off:.4f}s", problems

        return self.tally(trials, trial), ""

    @staticmethod
    def member_hash(bundle, name):
        try:
            with tarfile.open(bundle, "r:gz") as t:
                f = t.extractfile(f"./{IMG}/{name}")
                return hashlib.sha256(f.read()).hexdigest()
        except Exception as e:
            return f"unreadable: {e}"

    # --- kind 4: hostile third-party archives as the tree ---------------------------
    def hostile_inputs(self):
        found = {}
        pats = ["/root/.pyenv/versions/*/lib/python*/test/testtar*.tar*",
                "/root/.pyenv/versions/*/lib/python*/test/recursion.tar",
                "/root/.pyenv/versions/*/lib/python*/test/archivetestdata/*"]
        for pat in pats:
            for p in sorted(glob.glob(pat)):
                if not os.path.isfile(p):
                    continue
                with open(p, "rb") as f:
                    raw = f.read()
                h = hashlib.sha256(raw).hexdigest()[:12]
                if h in found:
                    continue
                name = os.path.basename(p)
                # The archive gzipped as it is, and (when compressed) its inner tar.
                found[h] = (f"{name}@{h}", gzip.compress(raw))
                inner = None
                if name.endswith(".xz"):
                    inner = lzma.decompress(raw)
                elif name.endswith((".gz", ".tgz")):
                    inner = gzip.decompress(raw)
                elif name.endswith(".bz2"):
                    import bz2
                    inner = bz2.decompress(raw)
                if inner is not None:
                    ih = hashlib.sha256(inner).hexdigest()[:12]
                    found.setdefault(ih, (f"{name}(inner)@{ih}", gzip.compress(inner)))
        # Their members moved under rootimg/ (re-packed by tarfile in pax and GNU form,
        # the source's own header quirks kept where tarfile keeps them), so the
        # special types, long names, sparse members and odd headers reach the tree
        # reader instead of stopping at the first name outside rootimg/.
        for n, g in list(found.values()):
            try:
                src = tarfile.open(fileobj=io.BytesIO(gzip.decompress(g)))
                members = src.getmembers()
            except Exception:
                continue
            for fmt, fname in ((tarfile.PAX_FORMAT, "pax"), (tarfile.GNU_FORMAT, "gnu")):
                buf = io.BytesIO()
                with tarfile.open(fileobj=buf, mode="w", format=fmt) as dst:
                    top = tarfile.TarInfo("rootimg")
                    top.type, top.mode = tarfile.DIRTYPE, 0o755
                    dst.addfile(top)
                    for m in members:
                        data = src.extractfile(m) if m.isreg() else None
                        m2 = copy.copy(m)
                        m2.name = "rootimg/" + m.name.lstrip("./")
                        if m.islnk():
                            m2.linkname = "rootimg/" + m.linkname.lstrip("./")
                        try:
                            dst.addfile(m2, data)
                        except Exception:
                            pass
                raw = buf.getvalue()
                h = hashlib.sha256(raw).hexdigest()[:12]
                found.setdefault(h, (f"{n} under rootimg/ ({fname})", gzip.compress(raw)))
        return list(found.values())

    def hostile(self, truncations):
        rng = random.Random(self.seed * 1000 + 6)
        inputs = self.hostile_inputs()
        # Also seeded truncations of each plain tar at block boundaries and inside blocks.
        cases = list(inputs)
        plain = [(n, gzip.decompress(g)) for n, g in inputs if gzip.decompress(g)[257:262] == b"ustar"]
        for n, raw in plain:
            for _ in range(truncations):
                cut = rng.randrange(len(raw))
                cases.append((f"{n} cut at {cut}", gzip.compress(raw[:cut])))
        stage = os.path.join(self.work, "hostile-stage")
        os.makedirs(stage, exist_ok=True)
        subprocess.run(["tar", "-xzf", self.bundle, "-C", stage], check=True)
        codes = {}

        def trial(k):
            name, tree = cases[k]
            d = self.fresh("hostile")
            with open(os.path.join(stage, IMG, "rootimgtree.gz"), "wb") as f:
                f.write(tree)
            b = os.path.join(d, "h.tgz")
            subprocess.run(["tar", "czf", b, "-C", stage, "."], check=True)
            root = os.path.join(d, "root")
            self.copy_mn(self.mn, root)
            before = self.state(root)
            v, im, problems = self.verify_then_import(d, b, root)
            codes[im[0]] = codes.get(im[0], 0) + 1
            if im[0] not in (0, 4, "timeout"):
                problems.append(f"import exit {im[0]}: {im[2].strip()[-200:]}")
            rootimg = os.path.join(root, IMGDIR, "rootimg")
            if not os.path.isdir(rootimg) or not os.listdir(rootimg):
                problems.append("rootimg missing or replaced by an empty tree")
            if im[0] != 0:
                after = self.state(root)
                if after != before:
                    problems.append(f"refused import changed the MN: {self.diff(after, before)}")
            return d, f"{name}: verify={v[0]} import={im[0]}", problems

        counts = self.tally(len(cases), trial)
        return counts, (f"{len(inputs)} distinct inputs, {len(cases) - len(inputs)} truncations; import exits "
                        + ", ".join(f"{k}: {v}" for k, v in sorted(codes.items(), key=str)))


def main():
    imgport, work, seed, repo, only = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4], sys.argv[5]
    c = Campaign(imgport, work, seed, repo)
    c.setup()
    kinds = [
        ("corrupt-bundles", lambda: c.corrupt(400)),
        ("kill9-export", lambda: c.kill_export(24)),
        ("two-imports", lambda: c.two_imports(20)),
        ("export-vs-import", lambda: c.export_vs_import(20)),
        ("two-exports", lambda: c.two_exports(20)),
        ("hostile-trees", lambda: c.hostile(10)),
    ]
    anybad = False
    for name, fn in kinds:
        if only != "all" and name not in only.split(","):
            continue
        t0 = time.monotonic()
        counts, note = fn()
        bad = len(counts["bad"])
        anybad |= bad > 0
        print(f"{name}: trials {counts['trials']}, clean {counts['clean']}, bad {bad}"
              f" ({time.monotonic() - t0:.0f}s){'; ' + note if note else ''}", flush=True)
        for b in counts["bad"]:
            print(f"  BAD {name}: {b}", flush=True)
    sys.exit(1 if anybad else 0)


if __name__ == "__main__":
    main()
