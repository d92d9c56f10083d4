//! Man pages and shell completions generated from the clap definitions, so they never
//! drift from the real flags (`scripts/gen-docs.sh`).

use std::path::Path;

use clap_complete::Shell;

use super::{EXIT_FAILED, EXIT_OK};

pub fn generate(cmd: clap::Command, dir: &Path) -> i32 {
    match write_all(cmd, dir) {
        Ok(n) => {
            println!("wrote {n} files to {}", dir.display());
            EXIT_OK
        }
        Err(e) => {
            eprintln!("imgport: {}: {e}", dir.display());
            EXIT_FAILED
        }
    }
}

fn write_all(mut cmd: clap::Command, dir: &Path) -> std::io::Result<usize> {
    let man = dir.join("man");
    let completions = dir.join("completions");
    std::fs::create_dir_all(&man)?;
    std::fs::create_dir_all(&completions)?;
    cmd.build();
    let mut n = 0;
    let mut page = |c: &clap::Command, name: &str| -> std::io::Result<()> {
        let mut out = Vec::new();
        let named = c.clone().name(name.to_string());
        clap_mangen::Man::new(named).title(name).render(&mut out)?;
        std::fs::write(man.join(format!("{name}.1")), out)?;
        n += 1;
        Ok(())
    };
    page(&cmd, "imgport")?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("imgport-{}", sub.get_name());
        page(sub, &name)?;
    }
    for shell in [Shell::Bash, Shell::Zsh, Shell::Fish] {
        clap_complete::generate_to(shell, &mut cmd, "imgport", &completions)?;
        n += 1;
    }
    Ok(n)
}
