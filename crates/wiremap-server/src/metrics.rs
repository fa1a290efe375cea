//! `/metrics` in the Prometheus text format, with per-edge series
//! (`wiremap_edge_requests_total{client,server,protocol}` and a latency histogram) that
//! Grafana's node graph can draw as the service map.

use std::fmt::Write;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use wiremap_ingest::{lock, LATENCY_BUCKETS};

use crate::App;

fn esc(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn head(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

/// Renders every metric.
pub(crate) fn render(app: &App) -> String {
    let mut c = lock(&app.shared.counters).clone();
    // Queries find store damage the ingest loop never sees.
    c.store = lock(&app.shared.store).stats();
    let mut o = String::with_capacity(4096);
    for (name, v, help) in [
        (
            "wiremap_packets_total",
            c.pipeline.packets,
            "Packets processed.",
        ),
        (
            "wiremap_bytes_total",
            c.pipeline.bytes,
            "Bytes of packets processed.",
        ),
        ("wiremap_flows_total", c.pipeline.flows, "Flows seen."),
        (
            "wiremap_entries_total",
            c.pipeline.entries,
            "Entries produced.",
        ),
        (
            "wiremap_duplicate_packets_total",
            c.duplicates,
            "Packets dropped as copies seen on another interface.",
        ),
        (
            "wiremap_store_errors_total",
            c.store_errors,
            "Writes the store refused.",
        ),
        (
            "wiremap_store_segments_dropped_total",
            c.store.segments_dropped,
            "Segments deleted by retention.",
        ),
        (
            "wiremap_store_damaged_records_total",
            c.store.damaged_records,
            "Stored records and packets skipped as damaged.",
        ),
        (
            "wiremap_store_damaged_bytes_total",
            c.store.damaged_bytes,
            "Bytes of stored records and packets skipped as damaged.",
        ),
        (
            "wiremap_store_quarantined_segments_total",
            c.store.quarantined_segments,
            "Segments moved into quarantine/ at start-up.",
        ),
    ] {
        head(&mut o, name, "counter", help);
        let _ = writeln!(o, "{name} {v}");
    }
    for (name, v, help) in [
        ("wiremap_store_bytes", c.store.bytes, "Bytes on disk."),
        (
            "wiremap_store_segments",
            c.store.segments,
            "Segments on disk.",
        ),
        ("wiremap_store_entries", c.store.entries, "Entries on disk."),
        ("wiremap_store_packets", c.store.packets, "Packets on disk."),
    ] {
        head(&mut o, name, "gauge", help);
        let _ = writeln!(o, "{name} {v}");
    }
    head(
        &mut o,
        "wiremap_dropped_total",
        "counter",
        "Everything dropped or not understood, by reason (`wiremap drops` explains each).",
    );
    for (reason, v) in &c.pipeline.dropped {
        let _ = writeln!(o, "wiremap_dropped_total{{reason=\"{}\"}} {v}", esc(reason));
    }
    head(
        &mut o,
        "wiremap_kernel_packets_total",
        "counter",
        "Packets the kernel passed to the capture ring.",
    );
    for (iface, k) in &c.kernel {
        let _ = writeln!(
            o,
            "wiremap_kernel_packets_total{{interface=\"{}\"}} {}",
            esc(iface),
            k.packets
        );
    }
    head(
        &mut o,
        "wiremap_kernel_drops_total",
        "counter",
        "Packets the kernel dropped because the capture ring was full.",
    );
    for (iface, k) in &c.kernel {
        let _ = writeln!(
            o,
            "wiremap_kernel_drops_total{{interface=\"{}\"}} {}",
            esc(iface),
            k.drops
        );
    }
    head(
        &mut o,
        "wiremap_interfaces_total",
        "counter",
        "Interfaces picked up (added), let go (removed) or not opened (failed) while following every interface.",
    );
    for (event, v) in [
        ("added", c.interfaces.added),
        ("removed", c.interfaces.removed),
        ("failed", c.interfaces.failed),
    ] {
        let _ = writeln!(o, "wiremap_interfaces_total{{event=\"{event}\"}} {v}");
    }
    head(
        &mut o,
        "wiremap_queries_stopped_total",
        "counter",
        "Queries stopped early or refused, by reason (client_gone, shutdown, timeout, busy, stream_slow_clients, stream_refused).",
    );
    for (reason, v) in app.queries.values() {
        let _ = writeln!(
            o,
            "wiremap_queries_stopped_total{{reason=\"{reason}\"}} {v}"
        );
    }
    if !c.kubernetes.is_empty() {
        head(
            &mut o,
            "wiremap_kubernetes",
            "gauge",
            "Kubernetes watch counters by name (lists, events, errors, objects, tombstones, rebuilds).",
        );
        for (k, v) in &c.kubernetes {
            let _ = writeln!(o, "wiremap_kubernetes{{counter=\"{}\"}} {v}", esc(k));
        }
    }
    if !c.agents.is_empty() {
        agents(&mut o, &c);
    }
    if !c.sink.is_empty() {
        head(
            &mut o,
            "wiremap_clickhouse",
            "gauge",
            "The hub's ClickHouse writer: queued, inserted, dropped (buffer full), failures, connected, partitions_dropped.",
        );
        for (k, v) in &c.sink {
            let _ = writeln!(o, "wiremap_clickhouse{{counter=\"{}\"}} {v}", esc(k));
        }
    }
    let edges = lock(&app.shared.edges);
    let mut series: Vec<_> = edges.series.iter().map(|(k, s)| (k, s)).collect();
    series.sort_by(|a, b| a.0.cmp(b.0));
    head(
        &mut o,
        "wiremap_edge_requests_total",
        "counter",
        "Requests per edge of the service map (workload level).",
    );
    let label = |(c, s, p): &(String, String, &str)| {
        format!(
            "client=\"{}\",server=\"{}\",protocol=\"{}\"",
            esc(c),
            esc(s),
            p
        )
    };
    for (k, s) in &series {
        let _ = writeln!(
            o,
            "wiremap_edge_requests_total{{{}}} {}",
            label(k),
            s.requests
        );
    }
    head(
        &mut o,
        "wiremap_edge_errors_total",
        "counter",
        "Failed requests per edge.",
    );
    for (k, s) in &series {
        let _ = writeln!(o, "wiremap_edge_errors_total{{{}}} {}", label(k), s.errors);
    }
    head(
        &mut o,
        "wiremap_edge_latency_seconds",
        "histogram",
        "Request to response latency per edge.",
    );
    for (k, s) in &series {
        let l = label(k);
        let mut acc = 0;
        for (b, n) in LATENCY_BUCKETS.iter().zip(s.buckets) {
            acc += n;
            let _ = writeln!(
                o,
                "wiremap_edge_latency_seconds_bucket{{{l},le=\"{b}\"}} {acc}"
            );
        }
        let _ = writeln!(
            o,
            "wiremap_edge_latency_seconds_bucket{{{l},le=\"+Inf\"}} {}\nwiremap_edge_latency_seconds_sum{{{l}}} {}\nwiremap_edge_latency_seconds_count{{{l}}} {}",
            s.timed, s.sum, s.timed
        );
    }
    head(
        &mut o,
        "wiremap_edge_series_overflow_total",
        "counter",
        "Entries of edges beyond the series cap.",
    );
    let _ = writeln!(o, "wiremap_edge_series_overflow_total {}", edges.overflow);
    o
}

/// A hub's agents, per node, and what counting once did.
fn agents(o: &mut String, c: &wiremap_ingest::LiveCounters) {
    type Get = fn(&wiremap_ingest::AgentStatus) -> f64;
    let per: [(&str, &str, &str, Get); 5] = [
        (
            "wiremap_agent_connected",
            "gauge",
            "1 when the node's agent was heard from within 3 s.",
            |a| f64::from(u8::from(a.connected)),
        ),
        (
            "wiremap_agent_entries_total",
            "counter",
            "Entries the node's agent produced.",
            |a| a.pipeline.entries as f64,
        ),
        (
            "wiremap_agent_kernel_drops_total",
            "counter",
            "Packets the node's kernel rings dropped.",
            |a| a.kernel_drops as f64,
        ),
        (
            "wiremap_agent_buffer_drops_total",
            "counter",
            "Entries and packets the node's agent dropped from its full buffer for the hub.",
            |a| a.buffer_drops as f64,
        ),
        (
            "wiremap_agent_last_seen_seconds",
            "gauge",
            "Seconds since the node's agent was last heard from.",
            |a| a.last_seen_secs_ago,
        ),
    ];
    for (name, kind, help, get) in per {
        head(o, name, kind, help);
        for a in &c.agents {
            let _ = writeln!(o, "{name}{{node=\"{}\"}} {}", esc(&a.node), get(a));
        }
    }
    head(
        o,
        "wiremap_cluster_total",
        "counter",
        "What the hub did to count an exchange two agents saw once (merged, late_duplicates, released_early, forgotten_early, held, packet_copies).",
    );
    for (k, v) in &c.cluster {
        let _ = writeln!(o, "wiremap_cluster_total{{event=\"{}\"}} {v}", esc(k));
    }
}

pub(crate) async fn metrics(State(app): State<App>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        render(&app),
    )
        .into_response()
}
