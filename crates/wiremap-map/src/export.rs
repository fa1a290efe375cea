//! Text exports of a map (and of a diff of two): Graphviz DOT, Mermaid, GraphML, SVG.

use std::fmt::Write;

use wiremap_model::Protocol;

use crate::{Edge, Node, ServiceMap};

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

/// Stroke width of an edge: one more per tenfold requests (the UI's log scale too).
fn edge_width(requests: u64) -> f64 {
    1.0 + (requests as f64).log10().max(0.0)
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

/// What an edge's label says of its health after the request count: errors, HTTP 4xx and
/// requests that went unanswered (so an edge with no answers never reads as a fast one).
pub(crate) fn health(e: &Edge) -> String {
    let mut s = String::new();
    if e.errors > 0 {
        let _ = write!(s, " err {}", e.errors);
    }
    if e.client_errors > 0 {
        let _ = write!(s, " 4xx {}", e.client_errors);
    }
    let unanswered = e.requests.saturating_sub(e.responses);
    if unanswered == e.requests && e.requests > 0 {
        s.push_str(" no response");
    } else if unanswered > 0 {
        let _ = write!(s, " {unanswered} no response");
    }
    s
}

/// How one node or edge is drawn differently from the plain map (a diff marks them); the
/// default draws it as the plain map does.
#[derive(Debug, Default)]
pub(crate) struct Look {
    /// Edge colour (instead of the protocol's) or node border.
    pub color: Option<&'static str>,
    /// Node fill.
    pub fill: Option<&'static str>,
    /// Dashed line or border.
    pub dashed: bool,
    /// Appended to the label.
    pub note: String,
    /// Label colour.
    pub font: Option<&'static str>,
}

pub(crate) fn dot(m: &ServiceMap) -> String {
    dot_with(
        m.nodes.iter().map(|n| (n, Look::default())),
        m.edges.iter().map(|e| (e, Look::default())),
    )
}

/// The one DOT writer: every map export and every diff goes through it.
pub(crate) fn dot_with<'a>(
    nodes: impl Iterator<Item = (&'a Node, Look)>,
    edges: impl Iterator<Item = (&'a Edge, Look)>,
) -> String {
    let mut s = String::new();
    let _ = writeln!(s, "digraph wiremap {{");
    let _ = writeln!(s, "  rankdir=LR;");
    let _ = writeln!(s, "  node [shape=box, style=\"rounded,filled\", fontname=\"Helvetica\", fillcolor=\"#eef3fb\"];");
    let _ = writeln!(s, "  edge [fontname=\"Helvetica\", fontsize=10];");
    for (n, look) in nodes {
        let fill = match look.fill {
            Some(f) => f,
            None if n.external => "#fdf2e9",
            None => "#eef3fb",
        };
        let mut extra = String::new();
        if let Some(c) = look.color {
            let _ = write!(extra, ", color=\"{c}\"");
        }
        if look.dashed {
            extra.push_str(", style=\"rounded,filled,dashed\"");
        }
        if let Some(c) = look.font {
            let _ = write!(extra, ", fontcolor=\"{c}\"");
        }
        let _ = writeln!(
            s,
            "  \"{}\" [label=\"{}\\n({}){}\", fillcolor=\"{}\"{extra}];",
            dot_escape(&n.id),
            dot_escape(&label(&n.name, &n.namespace)),
            n.kind,
            dot_escape(&look.note),
            fill
        );
    }
    for (e, look) in edges {
        let width = edge_width(e.requests);
        let mut extra = String::new();
        if look.dashed {
            extra.push_str(", style=dashed");
        }
        if let Some(c) = look.font {
            let _ = write!(extra, ", fontcolor=\"{c}\"");
        }
        let _ = writeln!(
            s,
            "  \"{}\" -> \"{}\" [label=\"{} {}{}{}\", color=\"{}\", penwidth={:.1}{extra}];",
            dot_escape(&e.source),
            dot_escape(&e.target),
            e.protocol,
            e.requests,
            health(e),
            dot_escape(&look.note),
            look.color.unwrap_or(protocol_color(e.protocol)),
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
    mermaid_with(
        m.nodes.iter().map(|n| (n, Look::default())),
        m.edges.iter().map(|e| (e, Look::default())),
    )
}

/// The one Mermaid writer, for maps and diffs.
pub(crate) fn mermaid_with<'a>(
    nodes: impl Iterator<Item = (&'a Node, Look)>,
    edges: impl Iterator<Item = (&'a Edge, Look)>,
) -> String {
    let mut s = String::from("flowchart LR\n");
    let mut index: std::collections::HashMap<&str, usize> = std::collections::HashMap::new();
    for (i, (n, look)) in nodes.enumerate() {
        index.insert(n.id.as_str(), i);
        let _ = writeln!(
            s,
            "  n{i}[\"{}{}\"]",
            mermaid_escape(&label(&n.name, &n.namespace)),
            mermaid_escape(&look.note)
        );
        if look.color.is_some() || look.fill.is_some() {
            let mut style = Vec::new();
            if let Some(f) = look.fill {
                style.push(format!("fill:{f}"));
            }
            if let Some(c) = look.color {
                style.push(format!("stroke:{c}"));
            }
            if let Some(c) = look.font {
                style.push(format!("color:{c}"));
            }
            if look.dashed {
                style.push("stroke-dasharray:5 5".into());
            }
            let _ = writeln!(s, "  style n{i} {}", style.join(","));
        }
    }
    let mut link = 0;
    for (e, look) in edges {
        let (Some(a), Some(b)) = (index.get(e.source.as_str()), index.get(e.target.as_str()))
        else {
            continue;
        };
        let _ = writeln!(
            s,
            "  n{a} -->|\"{} {}{}{}\"| n{b}",
            e.protocol,
            e.requests,
            health(e),
            mermaid_escape(&look.note)
        );
        let dash = if look.dashed {
            ",stroke-dasharray:5 5"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  linkStyle {link} stroke:{}{dash}",
            look.color.unwrap_or(protocol_color(e.protocol))
        );
        link += 1;
    }
    s
}

fn xml_escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

pub(crate) fn graphml(m: &ServiceMap) -> String {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<graphml xmlns=\"http://graphml.graphdrawing.org/xmlns\">\n",
    );
    for (id, on, name, ty) in [
        ("name", "node", "name", "string"),
        ("kind", "node", "kind", "string"),
        ("namespace", "node", "namespace", "string"),
        ("external", "node", "external", "boolean"),
        ("protocol", "edge", "protocol", "string"),
        ("requests", "edge", "requests", "long"),
        ("responses", "edge", "responses", "long"),
        ("errors", "edge", "errors", "long"),
        ("client_errors", "edge", "client_errors", "long"),
        ("p50", "edge", "latency_p50_us", "long"),
        ("p99", "edge", "latency_p99_us", "long"),
    ] {
        let _ = writeln!(
            s,
            "  <key id=\"{id}\" for=\"{on}\" attr.name=\"{name}\" attr.type=\"{ty}\"/>"
        );
    }
    s.push_str("  <graph id=\"wiremap\" edgedefault=\"directed\">\n");
    for n in &m.nodes {
        let _ = writeln!(
            s,
            "    <node id=\"{}\"><data key=\"name\">{}</data><data key=\"kind\">{}</data><data key=\"namespace\">{}</data><data key=\"external\">{}</data></node>",
            xml_escape(&n.id),
            xml_escape(&n.name),
            n.kind,
            xml_escape(&n.namespace),
            n.external
        );
    }
    for (i, e) in m.edges.iter().enumerate() {
        // No answers, no latency: the values are left out rather than written as 0.
        let latency = if e.responses > 0 {
            format!(
                "<data key=\"p50\">{}</data><data key=\"p99\">{}</data>",
                e.latency_us.p50, e.latency_us.p99
            )
        } else {
            String::new()
        };
        let _ = writeln!(
            s,
            "    <edge id=\"e{i}\" source=\"{}\" target=\"{}\"><data key=\"protocol\">{}</data><data key=\"requests\">{}</data><data key=\"responses\">{}</data><data key=\"errors\">{}</data><data key=\"client_errors\">{}</data>{latency}</edge>",
            xml_escape(&e.source),
            xml_escape(&e.target),
            e.protocol,
            e.requests,
            e.responses,
            e.errors,
            e.client_errors,
        );
    }
    s.push_str("  </graph>\n</graphml>\n");
    s
}

/// A static picture: nodes on concentric rings by kind of traffic (servers inside, pure
/// clients outside), ordered by namespace, edges coloured by protocol with arrows.
pub(crate) fn svg(m: &ServiceMap) -> String {
    let n = m.nodes.len().max(1);
    let mut order: Vec<usize> = (0..m.nodes.len()).collect();
    order.sort_by(|&a, &b| {
        let (x, y) = (&m.nodes[a], &m.nodes[b]);
        (x.requests_in == 0, &x.namespace, &x.id).cmp(&(y.requests_in == 0, &y.namespace, &y.id))
    });
    let servers = m.nodes.iter().filter(|x| x.requests_in > 0).count();
    let r_in = 60.0 + 18.0 * (servers as f64).sqrt() * 3.0;
    let r_out = r_in + 120.0 + 10.0 * ((n - servers) as f64).sqrt();
    let mut pos = std::collections::HashMap::new();
    let (mut i_in, mut i_out) = (0usize, 0usize);
    for &k in &order {
        let node = &m.nodes[k];
        let (r, i, total) = if node.requests_in > 0 {
            i_in += 1;
            (r_in, i_in - 1, servers.max(1))
        } else {
            i_out += 1;
            (r_out, i_out - 1, (n - servers).max(1))
        };
        let a = std::f64::consts::TAU * i as f64 / total as f64;
        pos.insert(node.id.as_str(), (r * a.cos(), r * a.sin()));
    }
    let size = r_out + 220.0;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"{:.0} {:.0} {:.0} {:.0}\" font-family=\"sans-serif\" font-size=\"11\">\n",
        -size,
        -size,
        2.0 * size,
        2.0 * size
    );
    s.push_str("<defs>");
    for p in wiremap_model::Protocol::ALL {
        let _ = write!(
            s,
            "<marker id=\"a-{p}\" viewBox=\"0 0 10 10\" refX=\"18\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"{}\"/></marker>",
            protocol_color(p)
        );
    }
    s.push_str("</defs>\n");
    for e in &m.edges {
        let (Some(a), Some(b)) = (pos.get(e.source.as_str()), pos.get(e.target.as_str())) else {
            continue;
        };
        let width = edge_width(e.requests);
        let _ = writeln!(
            s,
            "<line x1=\"{:.1}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"{}\" stroke-width=\"{width:.1}\" opacity=\"0.75\" marker-end=\"url(#a-{})\"><title>{} → {} {} {}</title></line>",
            a.0, a.1, b.0, b.1, protocol_color(e.protocol), e.protocol,
            xml_escape(&e.source), xml_escape(&e.target), e.protocol, e.requests
        );
    }
    for node in &m.nodes {
        let Some(p) = pos.get(node.id.as_str()) else {
            continue;
        };
        let dash = if node.external {
            " stroke-dasharray=\"3 2\""
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "<circle cx=\"{:.1}\" cy=\"{:.1}\" r=\"7\" fill=\"#4f7cff\" stroke=\"#333\"{dash}/><text x=\"{:.1}\" y=\"{:.1}\">{}</text>",
            p.0,
            p.1,
            p.0 + 10.0,
            p.1 + 4.0,
            xml_escape(&label(&node.name, &node.namespace))
        );
    }
    s.push_str("</svg>\n");
    s
}
