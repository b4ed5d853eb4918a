//! Prints the markdown table of a finished `cargo bench --bench engines` run:
//! `cargo run -p elastickv-bench --bin bench-report [CRITERION_DIR]`
//! (default: `$CARGO_TARGET_DIR/criterion`, else `target/criterion`).

use std::path::PathBuf;
use std::process::ExitCode;

fn main() -> ExitCode {
    let dir = std::env::args_os()
        .nth(1)
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map_or_else(|| PathBuf::from("target"), PathBuf::from);
            target.join("criterion")
        });
    match elastickv_bench::report::load(&dir) {
        Ok(results) if !results.is_empty() => {
            print!("{}", elastickv_bench::report::render(&results));
            ExitCode::SUCCESS
        }
        Ok(_) => {
            eprintln!("no criterion results under {}: run `cargo bench -p elastickv-bench --bench engines` first", dir.display());
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("cannot read {}: {e}", dir.display());
            ExitCode::FAILURE
        }
    }
}
