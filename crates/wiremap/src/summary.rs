//! The map for a person at a terminal: counts, the busiest edges with their errors and
//! latency, and what was dropped (`wiremap map` on a terminal, or `--format summary`).

use std::collections::HashMap;
use std::fmt::Write;

use wiremap_map::{Edge, ServiceMap};

/// Edges listed, busiest first.
const TOP: usize = 20;
/// Widest node name shown (longer ones are cut in the middle).
const NAME: usize = 34;

/// `1234567` as `1,234,567`.
fn count(n: u64) -> String {
    let s = n.to_string();
    let mut out = String::with_capacity(s.len() + s.len() / 3);
    for (i, c) in s.chars().enumerate() {
        if i > 0 && (s.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Microseconds as a short duration.
fn micros(us: u64) -> String {
    match us {
        0..=999 => format!("{us} µs"),
        1_000..=999_999 => format!("{:.1} ms", us as f64 / 1e3),
        _ => format!("{:.2} s", us as f64 / 1e6),
    }
}

/// Bytes with a binary unit.
fn bytes(b: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut v = b as f64;
    let mut u = 0;
    while v >= 1024.0 && u + 1 < UNITS.len() {
        v /= 1024.0;
        u += 1;
    }
    if u == 0 {
        format!("{b} B")
    } else {
        format!("{v:.1} {}", UNITS[u])
    }
}

/// A name cut to `w` characters, keeping both ends (the distinctive parts of DNS names and
/// workload ids).
fn fit(s: &str, w: usize) -> String {
    let n = s.chars().count();
    if n <= w {
        return s.to_string();
    }
    let keep = w.saturating_sub(1);
    let head: String = s.chars().take(keep / 2).collect();
    let tail: String = s.chars().skip(n - (keep - keep / 2)).collect();
    format!("{head}…{tail}")
}

/// Errors as `n (p%)`, or `-`.
fn errors(e: &Edge) -> String {
    if e.errors == 0 {
        return "-".into();
    }
    let pct = e.errors as f64 * 100.0 / e.requests.max(1) as f64;
    format!("{} ({pct:.1}%)", count(e.errors))
}

/// Latency: the p99 of answered requests, or `no response` when none was answered.
fn p99(e: &Edge) -> String {
    if e.responses == 0 {
        "no response".into()
    } else {
        micros(e.latency_us.p99)
    }
}

/// The summary of `m`.
pub(crate) fn render(m: &ServiceMap) -> String {
    let names: HashMap<&str, &str> = m
        .nodes
        .iter()
        .map(|n| (n.id.as_str(), n.name.as_str()))
        .collect();
    let name = |id: &str| names.get(id).copied().unwrap_or(id).to_string();
    let mut o = String::new();
    let s = &m.stats;
    let _ = writeln!(
        o,
        "{} nodes, {} edges at level {} · {} packets, {}, {} flows, {} entries",
        count(m.nodes.len() as u64),
        count(m.edges.len() as u64),
        m.level,
        count(s.packets),
        bytes(s.bytes),
        count(s.flows),
        count(s.entries),
    );
    let first = m.edges.iter().map(|e| e.first_seen).min();
    let last = m.edges.iter().map(|e| e.last_seen).max();
    if let (Some(a), Some(b)) = (first, last) {
        let _ = writeln!(o, "requests from {a} to {b}");
    }
    let mut edges: Vec<&Edge> = m.edges.iter().collect();
    // Busiest first; ties in a fixed order so the table is the same run after run.
    edges.sort_by(|a, b| {
        b.requests
            .cmp(&a.requests)
            .then_with(|| (&a.source, &a.target).cmp(&(&b.source, &b.target)))
            .then_with(|| a.protocol.as_str().cmp(b.protocol.as_str()))
    });
    if !edges.is_empty() {
        let _ = writeln!(
            o,
            "\n{:<w$}  {:<w$}  {:<10} {:>10} {:>16} {:>12} {:>11} {:>11}",
            "CLIENT",
            "SERVER",
            "PROTOCOL",
            "REQUESTS",
            "ERRORS",
            "P99",
            "SENT",
            "RECEIVED",
            w = NAME
        );
        for e in edges.iter().take(TOP) {
            let _ = writeln!(
                o,
                "{:<w$}  {:<w$}  {:<10} {:>10} {:>16} {:>12} {:>11} {:>11}",
                fit(&name(&e.source), NAME),
                fit(&name(&e.target), NAME),
                e.protocol.as_str(),
                count(e.requests),
                errors(e),
                p99(e),
                bytes(e.bytes.request),
                bytes(e.bytes.response),
                w = NAME
            );
        }
        if edges.len() > TOP {
            let _ = writeln!(
                o,
                "… and {} more edges (all of them: --format json, dot, mermaid, html)",
                count((edges.len() - TOP) as u64)
            );
        }
    }
    let dropped: Vec<(&String, &u64)> = s.dropped.iter().filter(|(_, n)| **n > 0).collect();
    if dropped.is_empty() {
        let _ = writeln!(o, "\nnothing dropped");
    } else {
        let _ = writeln!(o, "\ndropped or not understood (`wiremap drops` says why):");
        let w = dropped.iter().map(|(k, _)| k.len()).max().unwrap_or(0);
        for (k, n) in dropped {
            let _ = writeln!(o, "  {k:<w$}  {}", count(*n));
        }
    }
    o
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_as_people_write_them() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(micros(999), "999 µs");
        assert_eq!(micros(1_500), "1.5 ms");
        assert_eq!(micros(2_500_000), "2.50 s");
        assert_eq!(bytes(1023), "1023 B");
        assert_eq!(bytes(1536), "1.5 KiB");
        assert_eq!(fit("short", 10), "short");
        let long = "partner.googleadservices.com.example.internal";
        let cut = fit(long, 20);
        assert_eq!(cut.chars().count(), 20);
        assert!(
            cut.starts_with("partner.") && cut.ends_with("internal"),
            "{cut}"
        );
    }
}
