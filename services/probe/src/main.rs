//! `sandkasten-probe`: parse the command line, hand off to the library.

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = sandkasten_probe::cli::Cli::parse();
    match sandkasten_probe::cli::dispatch(cli) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("sandkasten-probe: {e}");
            ExitCode::from(1)
        }
    }
}
