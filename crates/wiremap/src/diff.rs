//! `wiremap diff`: the map of a current capture (or window of a data directory) against a
//! base one, every node and edge marked added, removed, changed or unchanged.

use std::io::Write;
use std::path::PathBuf;

use anyhow::Context;
use clap::ValueEnum;
use wiremap_map::{MapDiff, Thresholds};

use crate::cli::{map_of, open_output, LevelArg, NamingArgs, BAD_INPUT};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum DiffFormat {
    Json,
    Dot,
    Mermaid,
    /// The self-contained HTML of `wiremap map`, with the diff embedded.
    Html,
}

#[derive(Debug, clap::Args)]
#[command(
    after_help = "Two captures:           wiremap diff BASE.pcap CURRENT.pcap\n\
Two windows of a store: wiremap diff --data DIR --base-from T --base-to T --from T --to T\n\
Times are RFC 3339, `now`, or relative to the newest stored data (-5m, -1h)."
)]
pub(crate) struct DiffArgs {
    /// The base capture and the current one (pcap or pcapng; `-` reads standard input).
    #[arg(value_name = "PCAP", num_args = 0..=2)]
    pcaps: Vec<String>,
    /// Compare two windows of this data directory instead (read only).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
    /// Base window start (with --data).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    base_from: Option<String>,
    /// Base window end (with --data).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    base_to: Option<String>,
    /// Current window start (with --data).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// Current window end (with --data).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
    #[command(flatten)]
    naming: NamingArgs,
    /// How far nodes are merged.
    #[arg(long, value_enum, default_value = "workload")]
    level: LevelArg,
    /// Keep only the entries this KFL filter selects, in both.
    #[arg(long, short = 'f', value_name = "KFL")]
    filter: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value = "json")]
    format: DiffFormat,
    /// Write here instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<String>,
}

fn usage(msg: &str) -> u8 {
    eprintln!("wiremap: error: {msg}");
    BAD_INPUT
}

pub(crate) fn diff(a: DiffArgs) -> anyhow::Result<u8> {
    let (d, code) = match &a.data {
        Some(dir) => match from_store(&a, dir) {
            Ok(d) => (d, 0),
            Err(code) => return Ok(code),
        },
        None => match from_captures(&a) {
            Ok(x) => x,
            Err(code) => return Ok(code),
        },
    };
    let mut w = open_output(&a.output)?;
    match a.format {
        DiffFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &d).context("writing the diff")?;
            w.write_all(b"\n").context("writing the diff")?;
        }
        DiffFormat::Dot => w
            .write_all(d.to_dot().as_bytes())
            .context("writing the diff")?,
        DiffFormat::Mermaid => w
            .write_all(d.to_mermaid().as_bytes())
            .context("writing the diff")?,
        DiffFormat::Html => {
            let json = serde_json::to_string(&d).context("writing the diff")?;
            w.write_all(wiremap_server::standalone_html(&json).as_bytes())
                .context("writing the diff")?
        }
    }
    w.flush().context("writing the diff")?;
    Ok(code)
}

/// Each capture mapped exactly as `wiremap map` maps one.
fn from_captures(a: &DiffArgs) -> Result<(MapDiff, u8), u8> {
    let windows = [&a.base_from, &a.base_to, &a.from, &a.to];
    if windows.iter().any(|w| w.is_some()) {
        return Err(usage(
            "--base-from, --base-to, --from and --to choose windows of a data directory: give --data DIR",
        ));
    }
    let [base, current] = a.pcaps.as_slice() else {
        return Err(usage(
            "diff needs two captures (BASE CURRENT) or --data DIR with two windows",
        ));
    };
    if base == "-" && current == "-" {
        return Err(usage("only one of the two captures can be standard input"));
    }
    let level = a.level.level();
    let filter = a.filter.as_deref();
    let (b, b_code) = map_of(std::slice::from_ref(base), &a.naming, filter, level)?;
    let (c, c_code) = map_of(std::slice::from_ref(current), &a.naming, filter, level)?;
    let d = MapDiff::new(&b, &c, &Thresholds::default()).map_err(|e| usage(&e.to_string()))?;
    Ok((d, b_code.max(c_code)))
}

fn from_store(a: &DiffArgs, dir: &std::path::Path) -> Result<MapDiff, u8> {
    if !a.pcaps.is_empty() {
        return Err(usage(
            "give two captures or --data DIR with two windows, not both",
        ));
    }
    if a.naming.given() {
        return Err(usage(
            "--k8s and --zones name the endpoints of captures; a data directory's are named already",
        ));
    }
    for (v, flag) in [
        (&a.base_from, "--base-from"),
        (&a.base_to, "--base-to"),
        (&a.from, "--from"),
        (&a.to, "--to"),
    ] {
        if v.as_deref().is_none_or(|s| s.trim().is_empty()) {
            return Err(usage(&format!(
                "diff --data needs both windows: {flag} is missing"
            )));
        }
    }
    // Checked here first for the message with a caret that `map` gives; the store's own
    // parse (relative to its newest data) follows.
    if let Some(f) = &a.filter {
        crate::cli::compile_filter(f)?;
    }
    let q = wiremap_server::DiffQuery {
        level: Some(a.level.level().as_str().to_string()),
        q: a.filter.clone(),
        from: a.from.clone(),
        to: a.to.clone(),
        base_from: a.base_from.clone(),
        base_to: a.base_to.clone(),
    };
    wiremap_server::diff_store(dir, &q).map_err(|e| {
        eprintln!("wiremap: error: {e}");
        match e {
            wiremap_server::DiffStoreError::BadInput(_) => BAD_INPUT,
            wiremap_server::DiffStoreError::Failed(_) => 1,
        }
    })
}
