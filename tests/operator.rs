//! Operator experience and scripting: progress under a pseudo-terminal (and never in a
//! pipe), JSON documents parsed by python, exit codes, several images per call, the
//! generated man pages and completions, and the bulk-migration script of the README.

mod common;

use std::fs;
use std::process::Command;

use common::*;

/// Runs a shell command line under a pseudo-terminal (util-linux `script`) and
/// returns what the terminal showed.
fn on_a_terminal(cmd: &str) -> String {
    let log = tempfile::NamedTempFile::new().unwrap();
    let out = Command::new("script")
        .args(["-qfec", cmd, log.path().to_str().unwrap()])
        .output()
        .expect("script(1)");
    assert!(out.status.success(), "{cmd}: {}", text(&out));
    String::from_utf8_lossy(&fs::read(log.path()).unwrap()).into_owned()
}

/// The sample MN with a 24 MiB random file in the tree, so compression takes long
/// enough for the bar to be drawn.
fn slow_sample() -> Mn {
    let mn = Mn::sample();
    let big = mn.path(&format!("{ROOTIMGDIR}/rootimg/data/big.bin"));
    sh(&format!(
        "head -c 25165824 /dev/urandom > {}",
        big.display()
    ));
    mn
}

#[test]
fn progress_shows_on_a_terminal_and_never_in_a_pipe() {
    let mn = slow_sample();
    let work = tempfile::tempdir().unwrap();
    let b = work.path().join("b.tgz");
    let cmd = format!(
        "{} --root {} --threads 1 export {IMG} {}",
        bin().display(),
        mn.root().display(),
        b.display()
    );
    let screen = on_a_terminal(&cmd);
    assert!(screen.contains("compress ["), "bar drawn: {screen}");
    assert!(screen.contains("ETA"), "{screen}");
    assert!(screen.contains("Done!"), "xCAT's lines stay: {screen}");
    // --quiet on a terminal: no bar, no data lines.
    let screen = on_a_terminal(&format!("{cmd} --quiet"));
    assert!(!screen.contains("compress ["), "{screen}");
    assert!(!screen.contains("Done!"), "{screen}");
    // A pipe: the same command prints xCAT's lines only.
    let out = mn.run(&["export", IMG, b.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let all = format!("{}{}", stdout(&out), stderr(&out));
    assert!(
        !all.contains("ETA") && !all.contains('\u{1b}'),
        "no progress in a pipe: {all}"
    );
    // Import reads the bundle under a bar too.
    let target = Mn::empty();
    let screen = on_a_terminal(&format!(
        "{} --root {} import {}",
        bin().display(),
        target.root().display(),
        b.display()
    ));
    assert!(screen.contains("read ["), "{screen}");
    assert!(
        screen.contains("Successfully imported the image"),
        "{screen}"
    );
}

fn json_of(out: &std::process::Output) -> String {
    let s = stdout(out);
    // python parses it; the test fails on anything that is not one JSON document.
    python(
        "import json,sys; json.loads(sys.argv[1]); print('ok')",
        &[&s],
    );
    s
}

/// Evaluates a python expression over the JSON document `doc`.
fn q(doc: &str, expr: &str) -> String {
    python(
        &format!("import json,sys; d=json.loads(sys.argv[1]); print({expr})"),
        &[doc],
    )
    .trim()
    .to_string()
}

#[test]
fn json_documents_for_every_command() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let out = mn.run_in(work.path(), &["--json", "export", IMG]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stderr(&out).contains("Done!"),
        "xCAT's lines go to stderr with --json"
    );
    let doc = json_of(&out);
    assert_eq!(
        q(
            &doc,
            "d['schema'], d['command'], d['ok'], d['exit_code'], d['failed']"
        ),
        "1 export True 0 []"
    );
    assert_eq!(q(&doc, "d['images'][0]['image']"), IMG);
    assert_eq!(q(&doc, "d['images'][0]['tree_entries']"), "26");
    assert_eq!(q(&doc, "d['images'][0]['bundle'].endswith('.tgz')"), "True");
    assert_eq!(q(&doc, "d['images'][0]['bytes_out'] == __import__('os').path.getsize(d['images'][0]['bundle'])"), "True");
    let bundle = work.path().join(format!("{IMG}.tgz"));
    let b = bundle.to_str().unwrap();

    let target = Mn::empty();
    let out = target.run(&["--json", "import", b, "--dry-run"]);
    let doc = json_of(&out);
    assert_eq!(
        q(&doc, "d['command'], d['dry_run'], d['ok']"),
        "import True True"
    );
    assert_eq!(
        q(
            &doc,
            "sorted({f['action'] for f in d['bundles'][0]['images'][0]['dry_run']['files']})"
        ),
        "['create']"
    );
    assert_eq!(q(&doc, "[r['change'] for r in d['bundles'][0]['images'][0]['dry_run']['rows'] if r['table']=='osimage']"), "['insert']");
    let out = target.run(&["--json", "import", b]);
    let doc = json_of(&out);
    assert_eq!(q(&doc, "d['ok'], d['bundles'][0]['images'][0]['image'], d['bundles'][0]['images'][0]['tree_entries']"), format!("True {IMG} 26"));

    let doc = json_of(
        &Command::new(bin())
            .args(["--json", "inspect", b])
            .output()
            .unwrap(),
    );
    assert_eq!(
        q(
            &doc,
            "d['format'], d['images'][0]['provmethod'], d['tree']['entries']"
        ),
        "imgport-1 statelite 26"
    );
    assert_eq!(
        q(&doc, "[f['name'] for f in d['images'][0]['files']][:2]"),
        "['kernel', 'initrd-statelite.gz']"
    );
    let doc = json_of(
        &Command::new(bin())
            .args(["--json", "ls", b, "dev"])
            .output()
            .unwrap(),
    );
    assert_eq!(q(&doc, "sorted((e['path'], e['type']) for e in d['entries'])"), "[('rootimg/dev', 'dir'), ('rootimg/dev/initctl', 'fifo'), ('rootimg/dev/null', 'char'), ('rootimg/dev/sda', 'block')]");
    let doc = json_of(
        &Command::new(bin())
            .args(["--json", "verify", b])
            .output()
            .unwrap(),
    );
    assert_eq!(
        q(&doc, "d['ok'], d['entries'], d['differences']"),
        "True 26 []"
    );
}

#[test]
fn exit_codes_mean_something() {
    let mn = Mn::sample();
    let work = tempfile::tempdir().unwrap();
    let code = |out: std::process::Output| out.status.code();
    assert_eq!(code(mn.run(&["export"])), Some(2), "no image: usage");
    assert_eq!(
        code(mn.run(&["export", "a", "b", "c"])),
        Some(2),
        "several images need -o"
    );
    assert_eq!(code(mn.run(&["bogus-command"])), Some(2));
    assert_eq!(code(mn.run_in(work.path(), &["export", "nosuch"])), Some(3));
    assert_eq!(code(mn.run(&["import", "/nonexistent.tgz"])), Some(3));
    fs::write(work.path().join("junk.tgz"), b"this is not a bundle").unwrap();
    assert_eq!(
        code(mn.run(&["import", work.path().join("junk.tgz").to_str().unwrap()])),
        Some(4)
    );
    assert_eq!(
        code(
            Command::new(bin())
                .args(["verify", work.path().join("junk.tgz").to_str().unwrap()])
                .output()
                .unwrap()
        ),
        Some(4)
    );
}

#[test]
fn several_images_in_one_call() {
    let mn = Mn::sample();
    // A second image sharing the tree, and a third that cannot be exported.
    mn.tabrestore(
        "osimage",
        "#imagename,profile,provmethod,osvers,osarch\n\"copy\",\"compute\",\"statelite\",\"rhels8.5.0\",\"x86_64\"\n\"broken\",\"x\",\"diskful\",\"rhels8.5.0\",\"x86_64\"\n",
        true,
    );
    mn.tabrestore(
        "linuximage",
        &format!("#imagename,rootimgdir,pkglist\n\"copy\",\"{ROOTIMGDIR}\",\"/opt/xcat/share/xcat/netboot/rh/compute.rhels8.x86_64.pkglist\"\n\"broken\",,\n"),
        true,
    );
    let out_dir = tempfile::tempdir().unwrap();
    let o = out_dir.path().to_str().unwrap();
    let out = mn.run(&["--json", "--quiet", "export", "--all", "-o", o]);
    assert_eq!(out.status.code(), Some(6), "partial: {}", text(&out));
    let doc = json_of(&out);
    assert_eq!(q(&doc, "d['failed']"), "['broken']");
    assert_eq!(
        q(&doc, "sorted(i['image'] for i in d['images'] if i['ok'])"),
        format!("['copy', '{IMG}']")
    );
    assert!(q(
        &doc,
        "[i['errors'] for i in d['images'] if not i['ok']][0][0]"
    )
    .contains("'provemethod' diskful is not supported"));
    let out = mn.run(&[
        "export",
        "copy",
        IMG,
        "-o",
        o,
        "--level",
        "1",
        "--threads",
        "1",
    ]);
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains("Summary: 2 of 2 images exported, 0 failed."),
        "{}",
        text(&out)
    );

    // Import both plus a junk bundle: the good ones land, the summary names the bad one.
    let junk = out_dir.path().join("junk.tgz");
    fs::write(&junk, b"junk").unwrap();
    let target = Mn::empty();
    let a = out_dir.path().join("copy.tgz");
    let b = out_dir.path().join(format!("{IMG}.tgz"));
    let out = target.run(&[
        "--json",
        "--quiet",
        "import",
        a.to_str().unwrap(),
        junk.to_str().unwrap(),
        b.to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(6), "{}", text(&out));
    let doc = json_of(&out);
    assert_eq!(q(&doc, "d['failed']"), format!("['{}']", junk.display()));
    assert_eq!(
        target.sql("osimage", "select imagename from osimage order by 1"),
        format!("copy\n{IMG}\n")
    );
}

#[test]
fn man_pages_and_completions_are_generated_from_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(bin())
        .args(["generate-docs", dir.path().to_str().unwrap()])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    for page in [
        "imgport.1",
        "imgport-export.1",
        "imgport-import.1",
        "imgport-verify.1",
    ] {
        let p = dir.path().join("man").join(page);
        let rendered = sh(&format!(
            "man -l {} 2>/dev/null | col -b || cat {}",
            p.display(),
            p.display()
        ));
        assert!(!rendered.is_empty(), "{page}");
    }
    let man = fs::read_to_string(dir.path().join("man/imgport-export.1")).unwrap();
    assert!(
        man.contains("compat") && man.contains("remotehost"),
        "{man}"
    );
    let bash = dir.path().join("completions/imgport.bash");
    sh(&format!("bash -n {}", bash.display()));
    assert!(fs::read_to_string(&bash).unwrap().contains("--dry-run"));
    assert!(dir.path().join("completions/_imgport").is_file());
    assert!(dir.path().join("completions/imgport.fish").is_file());
}

#[test]
fn the_readme_migration_script_moves_every_image() {
    let src = Mn::sample();
    let dst = Mn::empty();
    let work = tempfile::tempdir().unwrap();
    let out = Command::new("bash")
        .arg(repo().join("scripts/migrate.sh"))
        .args([src.root(), dst.root(), work.path()])
        .env("IMGPORT", bin())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        stdout(&out).contains(&format!("imported {IMG} from")),
        "{}",
        text(&out)
    );
    let diff = sh(&format!(
        "rsync -aHAXn --numeric-ids --itemize-changes {}/ {}/",
        src.path(&format!("{ROOTIMGDIR}/rootimg")).display(),
        dst.path(&format!("{ROOTIMGDIR}/rootimg")).display()
    ));
    assert_eq!(diff, "");
}
