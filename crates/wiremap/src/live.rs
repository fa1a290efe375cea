//! `wiremap serve`, `wiremap capture` and `wiremap export`: the data directory, the ingest
//! thread and the API server.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use wiremap_capture::{LiveError, LiveSource, RingConfig};
use wiremap_engine::{open_files, Engine, EngineConfig};
use wiremap_ingest::{capture_loop, fanout_loop, import, Ingest, Shared};
use wiremap_server::{check_listen, Access};
use wiremap_store::{Store, StoreConfig, StoreError};

use crate::cli::{compile_filter, engine_config, parse_size, NamingArgs, BAD_INPUT};

/// Where traffic is kept.
#[derive(Debug, clap::Args)]
pub(crate) struct StoreArgs {
    /// Data directory (entries and packets in time segments). `serve --pcap` without it
    /// imports into a temporary directory ($TMPDIR/wiremap-serve-PID, default /tmp), removed
    /// when the server stops; `capture` without it writes ./wiremap-data.
    #[arg(long, value_name = "DIR")]
    pub(crate) data: Option<PathBuf>,
    /// Drop data older than this (relative to the newest stored): `30m`, `24h`, `7d`.
    #[arg(long, value_name = "AGE", value_parser = parse_age)]
    pub(crate) retention: Option<i64>,
    /// Keep the store under this size: `500MiB`, `10GiB`, `2GB`.
    #[arg(long = "max-size", value_name = "SIZE", value_parser = parse_size)]
    pub(crate) max_size: Option<u64>,
}

/// How the API is reached.
#[derive(Debug, clap::Args)]
pub(crate) struct ListenArgs {
    /// Address of the API and UI.
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8899")]
    pub(crate) listen: SocketAddr,
    /// Bearer token every request must carry (required to listen beyond loopback).
    #[arg(
        long,
        value_name = "TOKEN",
        env = "WIREMAP_TOKEN",
        hide_env_values = true
    )]
    pub(crate) token: Option<String>,
    /// Listen beyond loopback without a token.
    #[arg(long)]
    pub(crate) insecure: bool,
    /// Another origin allowed to open the live stream (e.g. `https://grafana.example`).
    #[arg(long = "allow-origin", value_name = "ORIGIN")]
    pub(crate) origins: Vec<String>,
    /// Header whose value is replaced before anything is stored, on top of Authorization,
    /// Cookie and Set-Cookie; may be given several times.
    #[arg(long = "redact", value_name = "HEADER")]
    pub(crate) redact: Vec<String>,
    /// URL query parameter whose value is replaced before anything is stored, on top of the
    /// usual secret names (password, token, key, secret, auth, sig, session…; a name matches
    /// when it contains one); may be given several times.
    #[arg(long = "redact-param", value_name = "NAME")]
    pub(crate) redact_params: Vec<String>,
    /// Seconds a query may run before it is stopped (the answer is then 503).
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub(crate) query_timeout: u64,
    /// Nodes a map names before the rest fold into per-namespace, external and internal
    /// "other" nodes (counted in the map's stats).
    #[arg(long, value_name = "N", default_value_t = wiremap_map::DEFAULT_MAX_NODES)]
    pub(crate) max_nodes: usize,
}

/// What API clients may make the server do.
pub(crate) fn limits(l: &ListenArgs) -> wiremap_server::Limits {
    wiremap_server::Limits {
        query_timeout: std::time::Duration::from_secs(l.query_timeout),
        map_nodes: l.max_nodes,
        map_edges: l.max_nodes.saturating_mul(5),
        ..wiremap_server::Limits::default()
    }
}

#[derive(Debug, clap::Args)]
pub(crate) struct ServeArgs {
    #[command(flatten)]
    store: StoreArgs,
    /// Capture files to import into the data directory (with their resolution history),
    /// merged in time order: `--pcap a.pcap b.pcap` or `--pcap a.pcap --pcap b.pcap`.
    #[arg(long = "pcap", value_name = "FILE", num_args = 1..)]
    pcaps: Vec<String>,
    /// Store entries only, not the raw packets (no pcapng export then).
    #[arg(long = "no-packets")]
    no_packets: bool,
    #[command(flatten)]
    naming: NamingArgs,
    #[command(flatten)]
    listen: ListenArgs,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CaptureArgs {
    /// Interfaces to capture on (comma-separated or repeated); `any` is --all-interfaces.
    /// Captured interfaces are promiscuous while captured, so a bridge shows what it
    /// forwards between its ports.
    #[arg(
        short = 'i',
        long = "interface",
        value_name = "IFACE",
        required_unless_present = "all_interfaces",
        value_delimiter = ','
    )]
    interfaces: Vec<String>,
    /// Capture every interface but loopback, and follow them as they come and go (a pod's
    /// veth created later is captured within a second).
    #[arg(long = "all-interfaces", conflicts_with = "interfaces")]
    all_interfaces: bool,
    /// Kernel filter in tcpdump syntax (e.g. `not port 22`).
    #[arg(long, value_name = "EXPR")]
    bpf: Option<String>,
    /// Stop capturing after this many seconds (the API keeps serving).
    #[arg(long, value_name = "SECS")]
    duration: Option<u64>,
    /// Dissecting threads: above 1, each interface's traffic is split by flow across this
    /// many rings (kernel fanout), one per thread; naming and storing stay on one thread.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=64))]
    workers: u16,
    /// Capture ring per interface, MiB (kernel memory; raise it when `kernel_drops` grows).
    #[arg(long = "ring-mb", value_name = "MIB", default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    ring_mb: u32,
    #[command(flatten)]
    kube: KubeArgs,
    /// Store entries only, not the raw packets (no pcapng export then).
    #[arg(long = "no-packets")]
    no_packets: bool,
    /// The node's name, for `node_name` of every entry (default: `NODE_NAME` from the
    /// environment, as a DaemonSet sets it from the downward API, then the host name).
    #[arg(long, value_name = "NAME", env = "NODE_NAME")]
    node: Option<String>,
    #[command(flatten)]
    store: StoreArgs,
    #[command(flatten)]
    naming: NamingArgs,
    #[command(flatten)]
    listen: ListenArgs,
}

/// Where live names from the cluster's API come from.
#[derive(Debug, clap::Args)]
pub(crate) struct KubeArgs {
    /// Name endpoints from the cluster's API (live watches) with this kubeconfig.
    #[arg(long, value_name = "FILE")]
    kubeconfig: Option<PathBuf>,
    /// Name endpoints from the cluster's API with the default kubeconfig or, inside a pod,
    /// the service account (see deploy/rbac.yaml for the permissions).
    #[arg(long)]
    kube: bool,
    /// Name endpoints from an API server reached without credentials (`kubectl proxy`).
    #[arg(long = "kube-url", value_name = "URL")]
    kube_url: Option<String>,
}

/// A task for the server's runtime: one list+watch per kind, each change handed to `ingest`
/// and the watch counters to `/api/stats`. `None` when no cluster API was asked for.
pub(crate) type Background = std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>>;

pub(crate) fn kube_task(a: &KubeArgs, ingest: &mut Ingest) -> Option<Background> {
    if !(a.kube || a.kubeconfig.is_some() || a.kube_url.is_some()) {
        return None;
    }
    let (tx, rx) = std::sync::mpsc::channel();
    ingest.watch_k8s(rx);
    let (path, url) = (a.kubeconfig.clone(), a.kube_url.clone());
    let counters = ingest.shared().clone();
    Some(Box::pin(async move {
        let client = match url {
            Some(u) => wiremap_kube::client_for_url(&u),
            None => wiremap_kube::client(path.as_deref()).await,
        };
        match client {
            Ok(c) => {
                let stats = Arc::new(wiremap_kube::WatchStats::default());
                // Counters reach /api/stats and /metrics every second.
                let (watched, shown) = (stats.clone(), counters);
                tokio::spawn(async move {
                    loop {
                        {
                            let mut c = wiremap_ingest::lock_counters(&shown);
                            for (k, v) in watched.snapshot() {
                                c.kubernetes.insert(k.to_string(), v);
                            }
                        }
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                });
                wiremap_kube::watch(c, tx, stats).await;
            }
            Err(e) => {
                eprintln!("wiremap: warning: {e}; endpoints are named without the cluster")
            }
        }
    }))
}

#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    /// Data directory.
    #[arg(long, value_name = "DIR", required = true)]
    data: PathBuf,
    /// Only the traffic behind entries this KFL filter selects.
    #[arg(long, short = 'f', value_name = "KFL")]
    filter: Option<String>,
    /// Every stored packet of the window, not only the flows behind entries. Without it the
    /// export holds the packets of the flows that made entries (over the time their entries
    /// span), so traffic no entry came of (TLS application data after the handshake's
    /// entry, unrecognised or unanswered flows, ARP) is left out.
    #[arg(long = "all-packets", conflicts_with = "filter")]
    all_packets: bool,
    /// Window start: RFC 3339 or relative to the newest data (`-5m`).
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    from: Option<String>,
    /// Window end.
    #[arg(long, value_name = "TIME", allow_hyphen_values = true)]
    to: Option<String>,
    /// The pcapng file to write.
    #[arg(short = 'o', long = "output", value_name = "FILE", required = true)]
    output: PathBuf,
}

pub(crate) fn parse_age(s: &str) -> Result<i64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 's')) => (&s[..i], 1),
        Some((i, 'm')) => (&s[..i], 60),
        Some((i, 'h')) => (&s[..i], 3600),
        Some((i, 'd')) => (&s[..i], 86_400),
        _ => {
            return Err(format!(
                "`{s}`: expected a number with s, m, h or d (e.g. 24h)"
            ))
        }
    };
    let n: i64 = num
        .parse()
        .map_err(|_| format!("`{s}`: expected a number with s, m, h or d (e.g. 24h)"))?;
    if n <= 0 {
        return Err(format!("`{s}`: must be positive"));
    }
    Ok(n.saturating_mul(mult))
}

pub(crate) fn open_store(dir: PathBuf, a: &StoreArgs) -> Result<Store, u8> {
    let mut cfg = StoreConfig::new(dir);
    cfg.retention_secs = a.retention;
    cfg.max_size = a.max_size;
    Store::open(cfg).map_err(|e| {
        eprintln!("wiremap: error: {e}");
        match e {
            StoreError::Io { .. } => 1,
            _ => BAD_INPUT,
        }
    })
}

pub(crate) fn access(l: &ListenArgs) -> Result<Access, u8> {
    let access = Access {
        token: l.token.clone().filter(|t| !t.is_empty()),
        origins: l.origins.clone(),
    };
    if let Err(msg) = check_listen(l.listen, &access, l.insecure) {
        eprintln!("wiremap: error: {msg}");
        return Err(BAD_INPUT);
    }
    Ok(access)
}

/// Runs the server on the current thread until SIGINT/SIGTERM; `stop` is set then, and the
/// ingest thread is joined before the process exits.
/// Resolves at SIGINT or SIGTERM.
pub(crate) async fn stop_signal() {
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term => {}
    }
}

pub(crate) fn run_server(
    shared: Arc<Shared>,
    router: wiremap_server::Router,
    listen: SocketAddr,
    ingest: std::thread::JoinHandle<()>,
    what: &str,
    background: Option<Background>,
) -> anyhow::Result<u8> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("starting the server runtime")?;
    if let Some(task) = background {
        rt.spawn(task);
    }
    let result = rt.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen}"))?;
        let dir = wiremap_server_dir(&shared);
        eprintln!(
            "wiremap: {what}; API on http://{} (data in {})",
            listener.local_addr().unwrap_or(listen),
            dir
        );
        let stop = shared.clone();
        let shutdown = async move {
            stop_signal().await;
            stop.stop.store(true, Ordering::Relaxed);
        };
        wiremap_server::serve(listener, router, shutdown)
            .await
            .context("serving")
    });
    shared.stop.store(true, Ordering::Relaxed);
    let _ = ingest.join();
    result.map(|()| 0)
}

fn wiremap_server_dir(shared: &Shared) -> String {
    match shared.store.lock() {
        Ok(s) => s.dir().display().to_string(),
        Err(p) => p.into_inner().dir().display().to_string(),
    }
}

/// What `serve` and `capture` check and set up alike: who may connect, and the pipeline
/// settings (names from zones and snapshots, headers to redact).
pub(crate) fn prepare(
    listen: &ListenArgs,
    naming: &NamingArgs,
) -> Result<(Access, EngineConfig), u8> {
    let access = access(listen)?;
    let mut cfg = engine_config(naming)?;
    cfg.dissect.redact_headers = listen
        .redact
        .iter()
        .map(|h| h.trim().to_ascii_lowercase())
        .collect();
    cfg.dissect.redact_query_params.extend(
        listen
            .redact_params
            .iter()
            .map(|p| p.trim().to_ascii_lowercase()),
    );
    Ok((access, cfg))
}

pub(crate) fn serve(a: ServeArgs) -> anyhow::Result<u8> {
    let (access, mut cfg) = match prepare(&a.listen, &a.naming) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    cfg.k8s.extend(wiremap_engine::read_history(&a.pcaps));
    let source = if a.pcaps.is_empty() {
        None
    } else {
        match open_files(&a.pcaps) {
            Ok(s) => Some(s),
            Err(e) => {
                eprintln!("wiremap: error: {e}");
                return Ok(BAD_INPUT);
            }
        }
    };
    let dir = match (&a.store.data, &source) {
        (Some(d), _) => d.clone(),
        (None, Some(_)) => {
            std::env::temp_dir().join(format!("wiremap-serve-{}", std::process::id()))
        }
        (None, None) => {
            eprintln!("wiremap: error: serve needs --data DIR, --pcap FILE, or both");
            return Ok(BAD_INPUT);
        }
    };
    let temporary = a.store.data.is_none();
    let store = match open_store(dir.clone(), &a.store) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let shared = Shared::new(store);
    let mut ingest = Ingest::new(Engine::new(cfg), shared.clone(), !a.no_packets);
    let worker = std::thread::Builder::new()
        .name("import".into())
        .spawn(move || {
            if let Some(mut src) = source {
                import(&mut ingest, &mut *src);
            }
        })
        .context("starting the import thread")?;
    let what = if a.pcaps.is_empty() {
        "serving".to_string()
    } else {
        format!("importing {}", a.pcaps.join(", "))
    };
    let router = wiremap_server::router_with(shared.clone(), access, limits(&a.listen));
    let code = run_server(shared, router, a.listen.listen, worker, &what, None);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    code
}

pub(crate) fn capture(a: CaptureArgs) -> anyhow::Result<u8> {
    let (access, mut cfg) = match prepare(&a.listen, &a.naming) {
        Ok(x) => x,
        Err(c) => return Ok(c),
    };
    cfg.dissect.node = a.node.clone().filter(|n| !n.is_empty()).unwrap_or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_default()
    });
    let ring = RingConfig {
        blocks: a.ring_mb,
        ..RingConfig::default()
    };
    let all = a.all_interfaces || a.interfaces.iter().any(|i| i == "any");
    let opened = if all {
        LiveSource::open_all_fanout(a.bpf.as_deref(), ring, usize::from(a.workers))
    } else {
        LiveSource::open_fanout(
            &a.interfaces,
            a.bpf.as_deref(),
            ring,
            usize::from(a.workers),
        )
    };
    let live = match opened {
        Ok(l) => l,
        Err(e) => {
            eprintln!("wiremap: error: {e}");
            return Ok(match e {
                LiveError::Permission { .. } | LiveError::Os { .. } => 1,
                LiveError::NoInterface { .. } | LiveError::Bpf { .. } => BAD_INPUT,
            });
        }
    };
    let dir = a
        .store
        .data
        .clone()
        .unwrap_or_else(|| PathBuf::from("wiremap-data"));
    let store = match open_store(dir, &a.store) {
        Ok(s) => s,
        Err(c) => return Ok(c),
    };
    let shared = Shared::new(store);
    let worker_cfg = cfg.clone();
    let mut ingest = Ingest::new(Engine::new(cfg), shared.clone(), !a.no_packets);
    let background = kube_task(&a.kube, &mut ingest);
    let deadline = a.duration.map(|s| Instant::now() + Duration::from_secs(s));
    let keep_packets = !a.no_packets;
    let worker = std::thread::Builder::new()
        .name("capture".into())
        .spawn(move || {
            let mut live = live;
            if live.len() == 1 {
                if let Some(one) = live.pop() {
                    capture_loop(one, ingest, deadline);
                }
            } else {
                fanout_loop(live, ingest, deadline, worker_cfg, keep_packets);
            }
        })
        .context("starting the capture thread")?;
    let what = if all {
        "capturing on every interface".to_string()
    } else {
        format!("capturing on {}", a.interfaces.join(","))
    };
    let router = wiremap_server::router_with(shared.clone(), access, limits(&a.listen));
    run_server(shared, router, a.listen.listen, worker, &what, background)
}

pub(crate) fn export(a: ExportArgs) -> anyhow::Result<u8> {
    let segments = match wiremap_store::inspect(&a.data) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("wiremap: error: {e}");
            return Ok(BAD_INPUT);
        }
    };
    let newest = segments
        .iter()
        .filter_map(|m| m.to)
        .max()
        .map(wiremap_model::Timestamp);
    let now = newest.unwrap_or(wiremap_model::Timestamp(0));
    let mut scope = wiremap_store::Scope::default();
    for (v, slot, what) in [
        (&a.from, &mut scope.from, "--from"),
        (&a.to, &mut scope.to, "--to"),
    ] {
        if let Some(s) = v {
            match wiremap_server::parse_time(s, now) {
                Some(t) => *slot = Some(t),
                None => {
                    eprintln!("wiremap: error: {what} `{s}`: expected RFC 3339, `now` or relative like -5m");
                    return Ok(BAD_INPUT);
                }
            }
        }
    }
    let filter = match a.filter.as_deref().map(compile_filter).transpose() {
        Ok(f) => f,
        Err(code) => return Ok(code),
    };
    let out = std::fs::File::create(&a.output)
        .with_context(|| format!("cannot create {}", a.output.display()))?;
    let out = std::io::BufWriter::new(out);
    let report = if a.all_packets {
        wiremap_store::export_all_until(&a.data, &segments, &scope, &|| false, out)
    } else {
        wiremap_store::export(
            &a.data,
            &segments,
            &scope,
            &|e| filter.as_ref().is_none_or(|f| f.matches(e)),
            out,
        )
    }
    .with_context(|| format!("exporting to {}", a.output.display()))?;
    if a.all_packets {
        eprintln!(
            "wiremap: wrote {} packets (every stored packet of the window; {} entries) to {}",
            report.packets,
            report.entries,
            a.output.display()
        );
    } else {
        eprintln!(
            "wiremap: wrote {} packets of {} entries ({} flows) to {}",
            report.packets,
            report.entries,
            report.flows,
            a.output.display()
        );
    }
    Ok(0)
}
