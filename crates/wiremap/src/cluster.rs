//! `wiremap agent` (one per node: capture and dissect, send to the hub) and `wiremap hub`
//! (one per cluster: name, count once, store, serve).

use std::net::{IpAddr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use wiremap_capture::{LinkType, LiveError, LiveSource, Packet, RingConfig};
use wiremap_engine::{Engine, EngineConfig};
use wiremap_ingest::{Ingest, Shared};
use wiremap_uplink::{
    AgentCounters, HubConfig, Item, OnceConfig, RawPacketRef, Registry, SenderConfig, Uplink,
};

use crate::cli::{parse_size, NamingArgs, BAD_INPUT};
use crate::live::{
    kube_task, limits, open_store, prepare, run_server, KubeArgs, ListenArgs, StoreArgs,
};

#[derive(Debug, clap::Args)]
pub(crate) struct HubArgs {
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    kube: KubeArgs,
    #[command(flatten)]
    naming: NamingArgs,
    #[command(flatten)]
    listen: ListenArgs,
    /// How long an entry waits for the same exchange from another node's agent before it is
    /// stored (ms); raise it when agents are far apart or batches slow.
    #[arg(long = "merge-window", value_name = "MS", default_value_t = 2000, value_parser = clap::value_parser!(u64).range(100..=60_000))]
    merge_window: u64,
    /// Store entries in ClickHouse too (its HTTP interface, `http://HOST:8123`) and answer
    /// maps and entries from it (maps from its per-minute rollups when the filter allows);
    /// raw packets, and the export, stay in the hub's data directory.
    #[arg(long, value_name = "URL")]
    clickhouse: Option<String>,
    /// ClickHouse database (created when missing).
    #[arg(
        long = "clickhouse-database",
        value_name = "NAME",
        default_value = "wiremap"
    )]
    clickhouse_database: String,
    /// ClickHouse user and password (`USER:PASSWORD`).
    #[arg(
        long = "clickhouse-auth",
        value_name = "USER:PASSWORD",
        env = "WIREMAP_CLICKHOUSE_AUTH",
        hide_env_values = true
    )]
    clickhouse_auth: Option<String>,
    /// Gzip the inserts (for a ClickHouse across a slow network; on a cluster network the
    /// CPU it costs is the scarcer resource).
    #[arg(long = "clickhouse-compress")]
    clickhouse_compress: bool,
    /// Entries held for ClickHouse while it is away or slow; past it the oldest go (counted).
    #[arg(
        long = "clickhouse-buffer",
        value_name = "ENTRIES",
        default_value_t = 1_000_000
    )]
    clickhouse_buffer: usize,
}

/// The hub's ClickHouse and its writer.
type ClickHouseParts = (
    Arc<wiremap_clickhouse::ClickHouse>,
    Arc<wiremap_clickhouse::Writer>,
);

/// Opens the hub's ClickHouse, if one was asked for, and starts its writer.
fn open_clickhouse(a: &HubArgs) -> Result<Option<ClickHouseParts>, u8> {
    let Some(url) = &a.clickhouse else {
        return Ok(None);
    };
    let (user, password) = match a.clickhouse_auth.as_deref().map(|s| s.split_once(':')) {
        None => (None, None),
        Some(Some((u, p))) => (Some(u.to_string()), Some(p.to_string())),
        Some(None) => {
            eprintln!("wiremap: error: --clickhouse-auth: expected USER:PASSWORD");
            return Err(BAD_INPUT);
        }
    };
    let cfg = wiremap_clickhouse::Config {
        url: url.trim_end_matches('/').to_string(),
        database: a.clickhouse_database.clone(),
        user,
        password,
        compress: a.clickhouse_compress,
        // Bigger inserts make fewer parts for the server to merge (and its two views to
        // aggregate): the writer sends what has queued, up to this many rows at once.
        batch_rows: 100_000,
        ..wiremap_clickhouse::Config::default()
    };
    let ch = wiremap_clickhouse::ClickHouse::open(cfg).map_err(|e| {
        eprintln!("wiremap: error: {e}");
        match e {
            wiremap_clickhouse::Error::Config(_)
            | wiremap_clickhouse::Error::SchemaTooNew { .. } => BAD_INPUT,
            _ => 1,
        }
    })?;
    let retention = a
        .store
        .retention
        .map(|s| Duration::from_secs(s.unsigned_abs()));
    let writer = wiremap_clickhouse::Writer::start(ch.clone(), a.clickhouse_buffer, retention)
        .map_err(|e| {
            eprintln!("wiremap: error: starting the ClickHouse writer: {e}");
            1
        })?;
    Ok(Some((Arc::new(ch), Arc::new(writer))))
}

#[derive(Debug, clap::Args)]
pub(crate) struct AgentArgs {
    /// The hub, `http://HOST:PORT`.
    #[arg(long, value_name = "URL", required = true)]
    hub: String,
    /// Bearer token of the hub.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WIREMAP_TOKEN",
        hide_env_values = true
    )]
    token: Option<String>,
    /// Interfaces to capture on (comma-separated or repeated); `any` is --all-interfaces.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required_unless_present_any = ["all_interfaces", "pcaps"],
        value_delimiter = ','
    )]
    interfaces: Vec<String>,
    /// Capture every interface but loopback, following them as they come and go.
    #[arg(long = "all-interfaces", conflicts_with = "interfaces")]
    all_interfaces: bool,
    /// Send capture files instead of live traffic (as fast as the hub takes them: a full
    /// buffer waits instead of dropping), then stop; may be given several times.
    #[arg(long = "pcap", value_name = "FILE", conflicts_with_all = ["interfaces", "all_interfaces"])]
    pcaps: Vec<String>,
    /// Kernel filter in tcpdump syntax.
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// The node's name, for `node_name` (default: `NODE_NAME`, then the host name).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    node: Option<String>,
    /// Send entries only, not the raw packets (the hub cannot export this node's traffic).
    #[arg(long = "no-packets")]
    no_packets: bool,
    /// Compressed batches held while the hub is away or slow; past it the oldest go (counted).
    #[arg(long, value_name = "SIZE", value_parser = parse_size, default_value = "64MiB")]
    buffer: u64,
    /// Memory the pipeline may hold for flows and their buffers.
    #[arg(long = "memory-limit", value_name = "SIZE", value_parser = parse_size, default_value = "128MiB")]
    memory_limit: u64,
    /// Capture ring per interface, MiB.
    #[arg(long = "ring-mb", value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    ring_mb: u32,
    /// Header whose value is replaced before anything leaves the node; may be repeated.
    #[arg(long = "redact", value_name = "HEADER")]
    redact: Vec<String>,
    /// URL query parameter whose value is replaced before anything leaves the node.
    #[arg(long = "redact-param", value_name = "NAME")]
    redact_params: Vec<String>,
    /// Stop after this many seconds.
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
}

/// The node name: the flag, `NODE_NAME`, else the host name.
pub(crate) fn node_name(flag: Option<&str>) -> String {
    flag.filter(|n| !n.is_empty())
        .map(str::to_string)
        .unwrap_or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .map(|h| h.trim().to_string())
                .unwrap_or_default()
        })
}

pub(crate) fn hub(a: HubArgs) -> anyhow::Result<u8> {
    let (access, cfg) = match prepare(&a.listen, &a.naming) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    // Agents send what the nodes see: even on loopback nobody else may post into the map.
    if access.token.is_none() && !a.listen.insecure {
        eprintln!("wiremap: error: the hub needs --token (or WIREMAP_TOKEN) for its agents, or --insecure");
        return Ok(BAD_INPUT);
    }
    let dir = a
        .store
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("wiremap-data"));
    let mut store = match open_store(dir.clone(), &a.store) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let clickhouse = match open_clickhouse(&a) {
        Ok(c) => c,
        Err(code) => return Ok(code),
    };
    if let Some((ch, _)) = &clickhouse {
        match ch.max_id() {
            Ok(id) => store.continue_after(id),
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Ok(1);
            }
        }
    }
    let backend = clickhouse
        .as_ref()
        .map(|(ch, _)| ch.clone() as Arc<dyn wiremap_store::EntryStore>);
    let shared = Shared::with_backend(store, backend);
    let mut ingest = Ingest::new(Engine::new(cfg), shared.clone(), true);
    if let Some((_, w)) = &clickhouse {
        ingest.set_sink(w.clone());
    }
    let background = kube_task(&a.kube, &mut ingest);
    let registry = Arc::new(Mutex::new(Registry::open(Some(dir.join("agents.json")))));
    // Decoded batches waiting for the hub's one ingest thread (each up to 1 MiB of items):
    // past it agents are told to wait, which bounds the hub's memory, not the agents'.
    let (tx, rx) = std::sync::mpsc::sync_channel(16);
    let hub_cfg = HubConfig {
        once: OnceConfig {
            hold_ms: a.merge_window,
            ..OnceConfig::default()
        },
        ..HubConfig::default()
    };
    let reg = registry.clone();
    let worker = std::thread::Builder::new()
        .name("hub".into())
        .spawn(move || wiremap_uplink::hub_loop(rx, ingest, reg, hub_cfg))
        .context("starting the hub thread")?;
    let link = wiremap_server::AgentsLink { tx, registry };
    let router = wiremap_server::hub_router(shared.clone(), access, limits(&a.listen), link);
    let what = match &a.clickhouse {
        Some(u) => format!("hub for the cluster's agents, entries also in ClickHouse at {u}"),
        None => "hub for the cluster's agents".to_string(),
    };
    let code = run_server(shared, router, a.listen.listen, worker, &what, background);
    if let Some((_, w)) = clickhouse {
        w.finish(Duration::from_secs(5));
    }
    code
}

/// The hub's addresses: the agent's own connection to them is not traffic to map.
fn hub_addrs(url: &str) -> Result<Vec<SocketAddr>, String> {
    let rest = url
        .strip_prefix("http://")
        .ok_or_else(|| format!("--hub `{url}`: expected http://HOST:PORT"))?;
    let hostport = rest.split('/').next().unwrap_or(rest);
    let with_port = if hostport
        .rsplit_once(':')
        .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
        && !hostport.ends_with(']')
    {
        hostport.to_string()
    } else {
        format!("{hostport}:80")
    };
    with_port
        .to_socket_addrs()
        .map(|a| a.collect())
        .map_err(|e| format!("--hub `{url}`: {e}"))
}

/// Whether a captured packet is TCP to or from one of `hub`.
fn touches(hub: &[SocketAddr], link: LinkType, data: &[u8]) -> bool {
    let Some(at) = wiremap_decode::ip_offset(link.0, data) else {
        return false;
    };
    let Some(ip) = data.get(at..) else {
        return false;
    };
    let (src, dst, l4) = match ip.first().map(|v| v >> 4) {
        Some(4) if ip.len() >= 20 && ip[9] == 6 => {
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let s: [u8; 4] = [ip[12], ip[13], ip[14], ip[15]];
            let d: [u8; 4] = [ip[16], ip[17], ip[18], ip[19]];
            (IpAddr::from(s), IpAddr::from(d), ip.get(ihl..))
        }
        Some(6) if ip.len() >= 40 && ip[6] == 6 => {
            let mut s = [0u8; 16];
            let mut d = [0u8; 16];
            s.copy_from_slice(&ip[8..24]);
            d.copy_from_slice(&ip[24..40]);
            (IpAddr::from(s), IpAddr::from(d), ip.get(40..))
        }
        _ => return false,
    };
    let Some(t) = l4.filter(|t| t.len() >= 4) else {
        return false;
    };
    let sp = u16::from_be_bytes([t[0], t[1]]);
    let dp = u16::from_be_bytes([t[2], t[3]]);
    hub.iter()
        .any(|h| (h.ip() == src && h.port() == sp) || (h.ip() == dst && h.port() == dp))
}

pub(crate) fn agent(a: AgentArgs) -> anyhow::Result<u8> {
    let hub = match hub_addrs(&a.hub) {
        Ok(h) => h,
        Err(e) => {
            eprintln!("wiremap: error: {e}");
            return Ok(BAD_INPUT);
        }
    };
    let node = node_name(a.node.as_deref());
    let mut cfg = EngineConfig::default();
    cfg.set_memory_limit(usize::try_from(a.memory_limit).unwrap_or(usize::MAX));
    cfg.dissect.node = node.clone();
    cfg.dissect.redact_headers = a
        .redact
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    cfg.dissect.redact_query_params.extend(
        a.redact_params
            .iter()
            .map(|p| p.trim().to_ascii_lowercase()),
    );
    let mut source = if a.pcaps.is_empty() {
        let ring = RingConfig {
            blocks: a.ring_mb,
            ..RingConfig::default()
        };
        let all = a.all_interfaces || a.interfaces.iter().any(|i| i == "any");
        let opened = if all {
            LiveSource::open_all(a.bpf.as_deref(), ring)
        } else {
            LiveSource::open(&a.interfaces, a.bpf.as_deref(), ring)
        };
        match opened {
            Ok(l) => Source::Live(l),
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Ok(match e {
                    LiveError::Permission { .. } | LiveError::Os { .. } => 1,
                    LiveError::NoInterface { .. } | LiveError::Bpf { .. } => BAD_INPUT,
                });
            }
        }
    } else {
        match wiremap_engine::open_files(&a.pcaps) {
            Ok(f) => Source::Files(f),
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Ok(BAD_INPUT);
            }
        }
    };
    let what = match &source {
        Source::Files(_) => a.pcaps.join(", "),
        Source::Live(_) if a.interfaces.is_empty() || a.all_interfaces => "every interface".into(),
        Source::Live(_) => a.interfaces.join(","),
    };
    let mut scfg = SenderConfig::new(&a.hub, &node);
    scfg.token = a.token.clone().filter(|t| !t.is_empty());
    scfg.buffer_bytes = usize::try_from(a.buffer).unwrap_or(usize::MAX);
    scfg.wait_when_full = matches!(source, Source::Files(_));
    let uplink = Uplink::start(scfg).context("starting the sender thread")?;
    let stop = Arc::new(AtomicBool::new(false));
    watch_signals(stop.clone());
    eprintln!(
        "wiremap: agent of node `{node}` reading {what}; sending to {}",
        a.hub
    );
    let deadline = a.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let mut run = AgentRun {
        engine: Engine::new(cfg),
        uplink,
        items: Vec::new(),
        counters: AgentCounters::default(),
        keep_packets: !a.no_packets,
        hub,
    };
    let mut last = Instant::now();
    loop {
        if stop.load(Ordering::Relaxed) || deadline.is_some_and(|d| Instant::now() >= d) {
            break;
        }
        let more = match &mut source {
            Source::Live(live) => match live.next_packet(Duration::from_millis(100)) {
                Ok(Some(p)) => {
                    run.packet(&p);
                    true
                }
                Ok(None) => true,
                Err(e) => {
                    eprintln!("wiremap: error: {e}");
                    false
                }
            },
            Source::Files(f) => match f.advance() {
                Ok(true) => {
                    run.packet(&f.packet());
                    true
                }
                Ok(false) => false,
                Err(e) if e.is_truncated_tail() => {
                    eprintln!("wiremap: warning: {e}; using the records before it");
                    false
                }
                Err(e) => {
                    eprintln!("wiremap: error: {e}");
                    false
                }
            },
        };
        if !more {
            break;
        }
        if last.elapsed() >= Duration::from_millis(100) {
            run.tick(source.kernel_drops());
            last = Instant::now();
        }
    }
    run.engine.finish_dissect(&mut run.items);
    run.send_items();
    run.tick(source.kernel_drops());
    let grace = match source {
        Source::Files(_) => Duration::from_secs(600),
        Source::Live(_) => Duration::from_secs(5),
    };
    let status = run.uplink.finish(&run.counters, grace);
    eprintln!(
        "wiremap: agent stopped ({} entries, {} batches unacknowledged, {} entries dropped from the buffer)",
        run.counters.pipeline.entries, status.buffered_batches, status.dropped_entries
    );
    Ok(0)
}

/// Where an agent's packets come from.
enum Source {
    Live(LiveSource),
    Files(Box<dyn wiremap_capture::PacketSource + Send>),
}

impl Source {
    fn kernel_drops(&mut self) -> u64 {
        match self {
            Source::Live(l) => l.kernel_stats().iter().map(|(_, k)| k.drops).sum(),
            Source::Files(_) => 0,
        }
    }
}

/// An agent's pipeline: dissect, hand the items to the uplink.
struct AgentRun {
    engine: Engine,
    uplink: Uplink,
    items: Vec<wiremap_engine::Item>,
    counters: AgentCounters,
    keep_packets: bool,
    hub: Vec<SocketAddr>,
}

impl AgentRun {
    fn packet(&mut self, p: &Packet<'_>) {
        if touches(&self.hub, p.link, p.data) {
            return;
        }
        if self.keep_packets {
            let c = &self.counters;
            let raw = RawPacketRef {
                ts: p.ts,
                link: p.link,
                orig_len: p.orig_len,
                data: p.data,
            };
            self.uplink.push_packet(&raw, &|| c.clone());
        }
        self.engine.dissect(p, &mut self.items);
        self.send_items();
    }

    fn send_items(&mut self) {
        let c = &self.counters;
        for it in self.items.drain(..) {
            let item = match it {
                wiremap_engine::Item::Entry(e) => Item::Entry(e),
                wiremap_engine::Item::Answer(x) => Item::Answer(x),
            };
            self.uplink.push(&item, &|| c.clone());
        }
    }

    fn tick(&mut self, kernel_drops: u64) {
        let mut c = AgentCounters {
            pipeline: self.engine.stats(),
            kernel_drops,
            resent: 0,
        };
        self.uplink.add_drops(&mut c);
        self.counters = c;
        let c = &self.counters;
        self.uplink.tick(&|| c.clone());
    }
}

/// Sets `stop` on SIGINT or SIGTERM.
fn watch_signals(stop: Arc<AtomicBool>) {
    let _ = std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            rt.block_on(crate::live::stop_signal());
            stop.store(true, Ordering::Relaxed);
        });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_hub_connection_is_recognised_both_ways() {
        let hub: Vec<SocketAddr> = vec!["10.0.0.1:8899".parse().expect("addr")];
        // Ethernet + IPv4 + TCP 10.0.0.2:40000 → 10.0.0.1:8899, and the reply.
        let frame = |s: [u8; 4], d: [u8; 4], sp: u16, dp: u16| {
            let mut f = vec![0u8; 14];
            f[12] = 0x08;
            let mut ip = vec![0x45, 0, 0, 40, 0, 0, 0, 0, 64, 6, 0, 0];
            ip.extend_from_slice(&s);
            ip.extend_from_slice(&d);
            f.extend_from_slice(&ip);
            f.extend_from_slice(&sp.to_be_bytes());
            f.extend_from_slice(&dp.to_be_bytes());
            f.extend_from_slice(&[0u8; 16]);
            f
        };
        let out = frame([10, 0, 0, 2], [10, 0, 0, 1], 40000, 8899);
        let back = frame([10, 0, 0, 1], [10, 0, 0, 2], 8899, 40000);
        let other = frame([10, 0, 0, 2], [10, 0, 0, 1], 40000, 80);
        assert!(touches(&hub, LinkType::ETHERNET, &out));
        assert!(touches(&hub, LinkType::ETHERNET, &back));
        assert!(!touches(&hub, LinkType::ETHERNET, &other));
        assert!(!touches(&hub, LinkType::ETHERNET, &out[..20]));
        assert!(hub_addrs("https://x:1").is_err());
        assert_eq!(
            hub_addrs("http://127.0.0.1:9000/").expect("addr"),
            vec!["127.0.0.1:9000".parse::<SocketAddr>().expect("addr")]
        );
    }
}
