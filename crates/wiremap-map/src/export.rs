//! Text exports of a map: Graphviz DOT and Mermaid.

use std::fmt::Write;

use wiremap_model::Protocol;

use crate::ServiceMap;

/// Colour of a protocol's edges (shared by every export so a legend means the same).
pub fn protocol_color(p: Protocol) -> &'static str {
    match p {
        Protocol::Http => "#1f77b4",
        Protocol::Grpc => "#17becf",
        Protocol::Gql => "#e377c2",
        Protocol::Ws => "#9467bd",
        Protocol::Dns => "#2ca02c",
        Protocol::Tls => "#ff7f0e",
        Protocol::Redis => "#d62728",
        Protocol::Kafka => "#8c564b",
        Protocol::Amqp => "#bcbd22",
        Protocol::Postgresql => "#336791",
        Protocol::Mysql => "#00758f",
        Protocol::Mongodb => "#4db33d",
        Protocol::Tcp => "#7f7f7f",
        Protocol::Udp => "#aaaaaa",
    }
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

fn label(name: &str, namespace: &str) -> String {
    if namespace.is_empty() {
        name.to_string()
    } else {
        format!("{namespace}/{name}")
    }
}

pub(crate) fn dot(m: &ServiceMap) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph wiremap {{");
    let _ = writeln!(s, "  rankdir=LR;");
    let _ = writeln!(s, "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fillcolor=\"#eef3fb\"];");
    let _ = writeln!(s, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for n in &m.nodes {
        let fill = if n.external { "#fdf2e9" } else { "#eef3fb" };
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{}\\n({})\", fillcolor=\"{}\"];",
            dot_escape(&n.id),
            dot_escape(&label(&n.name, &n.namespace)),
            n.kind,
            fill
        );
    }
    for e in &m.edges {
        let width = 1.0 + (e.requests as f64).log10().max(0.0);
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{} {}\", color=\"{}\", penwidth={:.1}];",
            dot_escape(&e.source),
            dot_escape(&e.target),
            e.protocol,
            e.requests,
            protocol_color(e.protocol),
            width
        );
    }
    s.push_str("}\n");
    s
}

fn mermaid_escape(s: &str) -> String {
    s.replace('"', "#quot;")
}

pub(crate) fn mermaid(m: &ServiceMap) -> String {
    let mut s = String::from("flowchart LR\n");
    let index: std::collections::HashMap<&str, usize> = m
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.as_str(), i))
        .collect();
    for (i, n) in m.nodes.iter().enumerate() {
        let _ = writeln!(
            s,
            "  n{i}[\"{}\"]",
            mermaid_escape(&label(&n.name, &n.namespace))
        );
    }
    let mut link = 0;
    for e in &m.edges {
        let (Some(a), Some(b)) = (index.get(e.source.as_str()), index.get(e.target.as_str()))
        else {
            continue;
        };
        let _ = writeln!(s, "  n{a} -->|\"{} {}\"| n{b}", e.protocol, e.requests);
        let _ = writeln!(
            s,
            "  linkStyle {link} stroke:{}",
            protocol_color(e.protocol)
        );
        link += 1;
    }
    s
}
