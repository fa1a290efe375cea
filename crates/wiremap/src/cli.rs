use std::io::{IsTerminal, Write};

use anyhow::Context;
use clap::{Parser, Subcommand, ValueEnum};
use wiremap_engine::{open_files, run_source, Engine, EngineConfig, RunReport};
use wiremap_identity::Zones;
use wiremap_kfl::Filter;
use wiremap_map::{Level, MapBuilder, ServiceMap};
use wiremap_model::Entry;

use crate::output;

/// Identity-aware service maps from network traffic.
#[derive(Debug, Parser)]
#[command(name = "wiremap", version, about, propagate_version = true)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Build the service map of one or more captures.
    Map(MapArgs),
    /// List the entries (one per request/response exchange) of one or more captures.
    Entries(EntriesArgs),
    /// Serve the API (and UI) over a data directory, importing captures into it.
    Serve(crate::live::ServeArgs),
    /// Capture live from network interfaces into a data directory, serving the API meanwhile.
    Capture(crate::live::CaptureArgs),
    /// Export stored traffic (a window, a filter) as a pcapng file with its resolution history.
    Export(crate::live::ExportArgs),
    /// Run the cluster's hub: take the entries of every node's agent, name them with one
    /// identity index, count an exchange two nodes saw once, store them and serve the API
    /// and UI of `serve` (with the agents in /api/stats).
    Hub(crate::cluster::HubArgs),
    /// Run a node's agent: capture and dissect on this node and send the entries (and raw
    /// packets) to the hub, buffering while it is away.
    Agent(crate::cluster::AgentArgs),
    /// Compare the maps of two captures (BASE, CURRENT) or of two windows of a data
    /// directory: every node and edge marked added, removed, changed or unchanged.
    Diff(crate::diff::DiffArgs),
    /// Work with KFL filters.
    Kfl {
        #[command(subcommand)]
        command: KflCommand,
    },
    /// List every reason a map's `stats.dropped` (and `wiremap_dropped_total`) can show, with
    /// what it means.
    Drops,
}

#[derive(Debug, Subcommand)]
enum KflCommand {
    /// Check a filter: print its canonical form, or the error with a caret.
    Check {
        /// The filter.
        expr: String,
    },
    /// Print a filter as a ClickHouse WHERE condition.
    Sql {
        /// The filter.
        expr: String,
    },
    /// List the variables a filter can use, with their types.
    Vars,
}

/// Where endpoint names come from, besides DNS answers in the traffic.
#[derive(Debug, clap::Args)]
pub(crate) struct NamingArgs {
    /// File of `CIDR = name` lines naming address ranges.
    #[arg(long, value_name = "FILE")]
    zones: Option<String>,
    /// Kubernetes objects (`kubectl get pods,services,endpointslices,replicasets,jobs,nodes
    /// -A -o json`) that name the addresses; may be given several times.
    #[arg(long = "k8s", value_name = "FILE")]
    k8s: Vec<String>,
    /// Memory the pipeline may hold for flows, their buffers and learnt names together
    /// (e.g. 128MiB, 1GiB); past it the least recently active flows and names are dropped,
    /// and counted in the map's `stats.dropped`.
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "128MiB")]
    memory_limit: u64,
}

impl NamingArgs {
    /// Whether zones or cluster snapshots were given.
    pub(crate) fn given(&self) -> bool {
        self.zones.is_some() || !self.k8s.is_empty()
    }
}

#[derive(Debug, clap::Args)]
struct Input {
    /// pcap or pcapng files (`-` reads standard input); several are merged in time order.
    #[arg(required = true, value_name = "PCAP")]
    pcaps: Vec<String>,
    #[command(flatten)]
    naming: NamingArgs,
    /// Write here instead of standard output.
    #[arg(short = 'o', long = "output", value_name = "FILE")]
    output: Option<String>,
    /// Keep only the entries this KFL filter selects (e.g. `http && status_code >= 500`).
    #[arg(long, short = 'f', value_name = "KFL")]
    filter: Option<String>,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum MapFormat {
    /// A table for people: counts, the busiest edges with errors and p99, what was dropped.
    Summary,
    /// The map as JSON: every node and edge with counts, errors, bytes and latency.
    Json,
    /// Graphviz (`| dot -Tsvg > map.svg`).
    Dot,
    /// A Mermaid flowchart, to paste into Markdown.
    Mermaid,
    /// GraphML, for yEd, Gephi or networkx.
    Graphml,
    /// A drawing, laid out here (no Graphviz needed).
    Svg,
    /// One self-contained HTML file with the interactive map.
    Html,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum EntriesFormat {
    Jsonl,
    Table,
}

/// How far endpoints merge into one node.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub(crate) enum LevelArg {
    /// Every pod its own node.
    Pod,
    /// Pods merged into their workload (Deployment, StatefulSet, DaemonSet, CronJob…).
    Workload,
    /// Pods merged into the Service that selects them.
    Service,
    /// Everything of a namespace one node.
    Namespace,
    /// Every address its own node, names ignored (as network engineers count conversations).
    Ip,
}

#[derive(Debug, clap::Args)]
struct MapArgs {
    #[command(flatten)]
    input: Input,
    /// How far endpoints merge into one node (outside the cluster, at every level but ip,
    /// endpoints are named by the DNS name they were resolved under, else TLS SNI or HTTP
    /// Host, else a zone).
    #[arg(long, value_enum, default_value = "workload")]
    level: LevelArg,
    /// Output format [default: summary on a terminal without -o, json otherwise].
    #[arg(long, value_enum)]
    format: Option<MapFormat>,
}

#[derive(Debug, clap::Args)]
struct EntriesArgs {
    #[command(flatten)]
    input: Input,
    /// Output format.
    #[arg(long, value_enum, default_value = "jsonl")]
    format: EntriesFormat,
}

/// Exit code for bad input.
pub(crate) const BAD_INPUT: u8 = 2;

pub fn run(cli: Cli) -> anyhow::Result<u8> {
    match cli.command {
        Command::Map(a) => map(a),
        Command::Entries(a) => entries(a),
        Command::Diff(a) => crate::diff::diff(a),
        Command::Serve(a) => crate::live::serve(a),
        Command::Capture(a) => crate::live::capture(a),
        Command::Export(a) => crate::live::export(a),
        Command::Hub(a) => crate::cluster::hub(a),
        Command::Agent(a) => crate::cluster::agent(a),
        Command::Kfl { command } => Ok(kfl(command)),
        Command::Drops => {
            use std::io::Write;
            let decode = [
                (
                    "truncated_<header>",
                    "A frame cut short inside that header: not decoded.",
                ),
                (
                    "malformed_<header>",
                    "A header field with an impossible value: not decoded.",
                ),
                (
                    "unsupported_link",
                    "A frame of a link type wiremap does not decode.",
                ),
                (
                    "tunnel_too_deep",
                    "Tunnels nested deeper than wiremap follows.",
                ),
            ];
            let rows = wiremap_model::DropReason::ALL
                .iter()
                .map(|r| (r.name(), r.meaning()))
                .chain(decode);
            let mut out = std::io::stdout().lock();
            for (name, meaning) in rows {
                // A closed pipe (`| head`) ends the listing quietly.
                if writeln!(out, "{name:<30} {meaning}").is_err() {
                    break;
                }
            }
            Ok(0)
        }
    }
}

/// Compiles a filter; `now()` in it is the wall clock (the pipeline itself reads packet time).
pub(crate) fn compile_filter(expr: &str) -> Result<Filter, u8> {
    Filter::compile(expr, std::time::SystemTime::now().into()).map_err(|e| {
        eprintln!("wiremap: error: invalid filter at {e}\n{}", e.caret());
        BAD_INPUT
    })
}

fn kfl(cmd: KflCommand) -> u8 {
    match cmd {
        KflCommand::Check { expr } => match compile_filter(&expr) {
            Ok(f) => {
                println!("{}", f.canonical());
                0
            }
            Err(code) => code,
        },
        KflCommand::Sql { expr } => match compile_filter(&expr) {
            Ok(f) => match f.to_sql() {
                Ok(sql) => {
                    println!("{sql}");
                    0
                }
                Err(e) => {
                    eprintln!("wiremap: error: {e}");
                    BAD_INPUT
                }
            },
            Err(code) => code,
        },
        KflCommand::Vars => {
            for (name, t) in wiremap_kfl::variables() {
                println!("{name:<32} {}", t.name());
            }
            0
        }
    }
}

fn engine_for(pcaps: &[String], naming: &NamingArgs, lean: bool) -> Result<Engine, u8> {
    let mut cfg = engine_config(naming)?;
    cfg.dissect.lean = lean;
    // Captures exported by wiremap name their endpoints as they were named at capture time.
    cfg.k8s.extend(wiremap_engine::read_history(pcaps));
    Ok(Engine::new(cfg))
}

/// The pipeline settings that name endpoints: zones and Kubernetes snapshots.
pub(crate) fn engine_config(input: &NamingArgs) -> Result<EngineConfig, u8> {
    let mut cfg = EngineConfig::default();
    cfg.set_memory_limit(usize::try_from(input.memory_limit).unwrap_or(usize::MAX));
    if let Some(path) = &input.zones {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) => {
                eprintln!("wiremap: error: {path}: {e}");
                return Err(BAD_INPUT);
            }
        };
        match Zones::parse(path, &text) {
            Ok(z) => cfg.zones = z,
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Err(BAD_INPUT);
            }
        }
    }
    if !input.k8s.is_empty() {
        let mut texts = Vec::new();
        for path in &input.k8s {
            match std::fs::read_to_string(path) {
                Ok(t) => texts.push((path.clone(), t)),
                Err(e) => {
                    eprintln!("wiremap: error: {path}: {e}");
                    return Err(BAD_INPUT);
                }
            }
        }
        match wiremap_identity::holdings(&texts) {
            Ok(h) => cfg.k8s = h,
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Err(BAD_INPUT);
            }
        }
    }
    Ok(cfg)
}

/// Runs the pipeline over the inputs; `None` when nothing could be read.
fn process(
    pcaps: &[String],
    engine: &mut Engine,
    out: &mut (dyn FnMut(Entry) + Send),
) -> Result<RunReport, u8> {
    let mut source = match open_files(pcaps) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wiremap: error: {e}");
            return Err(BAD_INPUT);
        }
    };
    let total: u64 = pcaps
        .iter()
        .filter(|p| *p != "-")
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    // On a terminal, shown once reading has taken a second (a quick run prints nothing);
    // a bar when the size is known, bytes read and speed when not (standard input).
    let bar = std::io::stderr().is_terminal().then(|| {
        let b = indicatif::ProgressBar::with_draw_target(
            (total > 0).then_some(total),
            indicatif::ProgressDrawTarget::hidden(),
        );
        let style = if total > 0 {
            "{bar:40} {bytes}/{total_bytes} {bytes_per_sec} eta {eta}"
        } else {
            "{spinner} {bytes} read, {bytes_per_sec}"
        };
        b.set_style(
            indicatif::ProgressStyle::with_template(style)
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        b
    });
    let started = std::time::Instant::now();
    let mut shown = false;
    let mut progress = |pos: u64| {
        if let Some(b) = &bar {
            if !shown && started.elapsed() >= std::time::Duration::from_secs(1) {
                b.set_draw_target(indicatif::ProgressDrawTarget::stderr());
                shown = true;
            }
            b.set_position(pos);
        }
    };
    let report = run_source(engine, &mut *source, &mut progress, out);
    if let Some(b) = bar {
        b.finish_and_clear();
    }
    for w in &report.warnings {
        eprintln!("wiremap: warning: {w}; using the records before it");
    }
    for e in &report.errors {
        eprintln!("wiremap: error: {e}");
    }
    Ok(report)
}

pub(crate) fn open_output(path: &Option<String>) -> anyhow::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(p).with_context(|| format!("cannot create {p}"))?,
        )),
        None => Box::new(std::io::BufWriter::with_capacity(
            1 << 16,
            std::io::stdout(),
        )),
    })
}

fn exit_code(report: &RunReport) -> u8 {
    if report.errors.is_empty() {
        0
    } else {
        BAD_INPUT
    }
}

impl LevelArg {
    pub(crate) fn level(self) -> Level {
        match self {
            LevelArg::Pod => Level::Pod,
            LevelArg::Workload => Level::Workload,
            LevelArg::Service => Level::Service,
            LevelArg::Namespace => Level::Namespace,
            LevelArg::Ip => Level::Ip,
        }
    }
}

/// The map of captures as `wiremap map` builds it, with the exit code its reading earned;
/// `Err` with the exit code when there is no map to show.
pub(crate) fn map_of(
    pcaps: &[String],
    naming: &NamingArgs,
    filter: Option<&str>,
    level: Level,
) -> Result<(ServiceMap, u8), u8> {
    // Without a filter, nothing reads the entries' details: keep them lean.
    let mut engine = engine_for(pcaps, naming, filter.is_none())?;
    let filter = filter.map(compile_filter).transpose()?;
    let mut builder = MapBuilder::new(level);
    let report = process(pcaps, &mut engine, &mut |e| {
        if filter.as_ref().is_none_or(|f| f.matches(&e)) {
            builder.add(&e)
        }
    })?;
    let stats = engine.stats();
    if stats.packets == 0 && !report.errors.is_empty() {
        return Err(BAD_INPUT);
    }
    Ok((builder.build(stats), exit_code(&report)))
}

fn map(a: MapArgs) -> anyhow::Result<u8> {
    let (m, code) = match map_of(
        &a.input.pcaps,
        &a.input.naming,
        a.input.filter.as_deref(),
        a.level.level(),
    ) {
        Ok(x) => x,
        Err(code) => return Ok(code),
    };
    let format = a.format.unwrap_or(
        if a.input.output.is_none() && std::io::stdout().is_terminal() {
            MapFormat::Summary
        } else {
            MapFormat::Json
        },
    );
    let mut w = open_output(&a.input.output)?;
    match format {
        MapFormat::Summary => w
            .write_all(crate::summary::render(&m).as_bytes())
            .context("writing the map")?,
        // Streamed: a map of thousands of nodes is not built as one string first.
        MapFormat::Json => {
            serde_json::to_writer_pretty(&mut w, &m).context("writing the map")?;
            w.write_all(b"\n").context("writing the map")?;
        }
        MapFormat::Dot => w
            .write_all(m.to_dot().as_bytes())
            .context("writing the map")?,
        MapFormat::Mermaid => w
            .write_all(m.to_mermaid().as_bytes())
            .context("writing the map")?,
        MapFormat::Graphml => w
            .write_all(m.to_graphml().as_bytes())
            .context("writing the map")?,
        MapFormat::Svg => w
            .write_all(m.to_svg().as_bytes())
            .context("writing the map")?,
        MapFormat::Html => {
            let json = serde_json::to_string(&m).context("writing the map")?;
            w.write_all(wiremap_server::standalone_html(&json).as_bytes())
                .context("writing the map")?
        }
    }
    w.flush().context("writing the map")?;
    Ok(code)
}

fn entries(a: EntriesArgs) -> anyhow::Result<u8> {
    let mut engine = match engine_for(&a.input.pcaps, &a.input.naming, false) {
        Ok(e) => e,
        Err(code) => return Ok(code),
    };
    let filter = match a.input.filter.as_deref().map(compile_filter).transpose() {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let mut w = open_output(&a.input.output)?;
    let mut failed: Option<std::io::Error> = None;
    let format = a.format;
    if let EntriesFormat::Table = format {
        let _ = writeln!(w, "{}", output::table_header());
    }
    let report = match process(&a.input.pcaps, &mut engine, &mut |e| {
        if failed.is_some() || filter.as_ref().is_some_and(|f| !f.matches(&e)) {
            return;
        }
        let r = match format {
            EntriesFormat::Jsonl => serde_json::to_writer(&mut w, &e)
                .map_err(std::io::Error::from)
                .and_then(|_| w.write_all(b"\n")),
            EntriesFormat::Table => writeln!(w, "{}", output::table_row(&e)),
        };
        if let Err(err) = r {
            failed = Some(err);
        }
    }) {
        Ok(r) => r,
        Err(code) => return Ok(code),
    };
    if let Some(e) = failed {
        if e.kind() != std::io::ErrorKind::BrokenPipe {
            return Err(e).context("writing entries");
        }
        return Ok(0);
    }
    w.flush().context("writing entries")?;
    Ok(exit_code(&report))
}

/// A size like `500MiB`, `10GiB` or `64k`.
pub(crate) fn parse_size(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: f64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a size like 500MiB or 10GiB"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "k" | "kb" => 1e3,
        "m" | "mb" => 1e6,
        "g" | "gb" => 1e9,
        "t" | "tb" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024f64.powi(4),
        _ => return Err(format!("`{s}`: unknown unit `{unit}`")),
    };
    let v = n * mult;
    if v.is_nan() || v < 1.0 {
        return Err(format!("`{s}`: must be positive"));
    }
    Ok(v as u64)
}
