#!/usr/bin/env bash
# Generates man pages (man/*.1) and shell completions (bash, zsh, fish) from the clap
# definitions, so they always match the real flags.
# usage: scripts/gen-docs.sh [OUTDIR]   (default target/docs)
set -euo pipefail
cd "$(dirname "$0")/.."
out=${1:-target/docs}
cargo build --release --quiet
target/release/imgport generate-docs "$out"
echo "man pages: $out/man   completions: $out/completions"
echo "install: cp $out/man/*.1 /usr/local/share/man/man1/; cp $out/completions/imgport.bash /etc/bash_completion.d/imgport"
