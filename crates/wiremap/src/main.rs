//! The `wiremap` command: a thin front end over the pipeline crates.
//!
//! Exit codes: 0 on success, 2 on bad usage or bad input (the message names the file and
//! record), 1 on anything else.

mod cli;
mod cluster;
mod diff;
mod live;
mod output;
mod summary;

use std::process::ExitCode;

use clap::Parser;

/// The whole pipeline allocates per entry on one thread and frees on another (import, live
/// fan-out); glibc's allocator made that a third of the store thread's time. Measured in
/// `docs/architecture.md` ("Allocator").
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let args = match cli::Cli::try_parse() {
        Ok(a) => a,
        Err(e) => {
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(e) => {
            eprintln!("wiremap: error: {e:#}");
            ExitCode::from(1)
        }
    }
}
