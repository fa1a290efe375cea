// @ts-check
// Pure helpers of the service map page: colours, number formats, HTML escaping, entry
// summaries and the map exports (DOT, SVG). No state and no DOM beyond `download`.

export const PROTO_COLORS = {
  http: "#1f77b4", grpc: "#17becf", gql: "#e377c2", ws: "#9467bd", dns: "#2ca02c",
  tls: "#ff7f0e", redis: "#d62728", kafka: "#8c564b", amqp: "#bcbd22", postgresql: "#336791",
  mysql: "#00758f", mongodb: "#4db33d", tcp: "#7f7f7f", udp: "#aaaaaa",
};
export const KIND_COLORS = {
  workload: "#4f7cff", pod: "#7c5cff", service: "#00a3a3", namespace: "#e07b00",
  node: "#8a6d3b", dns: "#9aa4b2", zone: "#b08fd0", ip: "#c2c8d0", other: "#6b7280",
};
export const fmtN = (n) => (n >= 1e6 ? (n / 1e6).toFixed(1) + "M" : n >= 1e3 ? (n / 1e3).toFixed(1) + "k" : String(n));
export const fmtUs = (us) => (us >= 1e6 ? (us / 1e6).toFixed(2) + " s" : us >= 1e3 ? (us / 1e3).toFixed(1) + " ms" : us + " µs");
export const fmtB = (b) => (b >= 1 << 30 ? (b / (1 << 30)).toFixed(1) + " GiB" : b >= 1 << 20 ? (b / (1 << 20)).toFixed(1) + " MiB" : b >= 1024 ? (b / 1024).toFixed(1) + " KiB" : b + " B");
export const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
export const edgeKey = (e) => e.source + "|" + e.target + "|" + e.protocol;
// A node's name, inside its namespace when it has one.
export const label = (d) => (d.namespace && d.kind !== "namespace" ? d.namespace + "/" + d.name : d.name || d.id);
export function statsRows(rows) { return "<table>" + rows.map(([k, v]) => "<tr><th>" + esc(k) + "</th><td>" + v + "</td></tr>").join("") + "</table>"; }
export function summary(x) {
  if (x.method) return x.method + " " + (x.url || x.path || "");
  if (x.dns_questions) return (x.dns_questions || []).join(", ");
  if (x.tls_sni !== undefined) return x.tls_summary || x.tls_sni;
  for (const k of ["grpc_method", "redis_type", "kafka_api_key_name", "postgresql_query", "mysql_query", "mongodb_command", "amqp_method"]) if (x[k]) return String(x[k]);
  return x.src.ip + ":" + x.src.port + " → " + x.dst.ip + ":" + x.dst.port;
}
export function entryDetail(x) {
  const req = x.request && x.request.headers ? Object.entries(x.request.headers).map(([k, v]) => k + ": " + v).join("\n") : "";
  const resp = x.response && x.response.headers ? Object.entries(x.response.headers).map(([k, v]) => k + ": " + v).join("\n") : "";
  return "<h2 id=entrytitle>Entry " + esc(x.id) + ": " + esc(summary(x)) + "</h2>" + statsRows([
    ["time", esc(x.timestamp)], ["protocol", esc(x.protocol)], ["client", esc((x.src.name || x.src.ip) + " (" + x.src.ip + ":" + x.src.port + ")")],
    ["server", esc((x.dst.name || x.dst.ip) + " (" + x.dst.ip + ":" + x.dst.port + ")")], ["status", esc(x.status_code) + (x.error ? " <span class=err>error</span>" : "")],
    ["latency", fmtUs(x.elapsed_time)], ["sizes", fmtB(x.request_size) + " / " + fmtB(x.response_size)],
  ]) + (req ? "<h3>Request</h3><pre>" + esc((x.method ? x.method + " " + x.url + " " + x.http_version + "\n" : "") + req) + "</pre>" : "") +
    (resp ? "<h3>Response</h3><pre>" + esc(resp) + "</pre>" : "") + "<h3>All fields</h3><pre>" + esc(JSON.stringify(x, null, 2)) + "</pre>";
}
export function download(name, blob) {
  const a = document.createElement("a");
  a.href = URL.createObjectURL(blob);
  a.download = name;
  document.body.appendChild(a); a.click(); a.remove();
  setTimeout(() => URL.revokeObjectURL(a.href), 1000);
}
export function toDot(m) {
  const q = (s) => "\"" + String(s).replace(/\\/g, "\\\\").replace(/"/g, "\\\"") + "\"";
  const lines = ["digraph wiremap {", "  rankdir=LR;", "  node [shape=box, style=rounded];"];
  for (const n of m.nodes) lines.push("  " + q(n.id) + " [label=" + q(label(n)) + (n.external ? ", style=\"rounded,dashed\"" : "") + "];");
  for (const e of m.edges) lines.push("  " + q(e.source) + " -> " + q(e.target) + " [label=" + q(e.protocol + " " + e.requests) + ", color=" + q(PROTO_COLORS[e.protocol] || "#888") + "];");
  lines.push("}");
  return lines.join("\n") + "\n";
}
/**
 * The drawn map as SVG, from the geometry on screen (graph coordinates).
 * @param {{x: number, y: number, r: number, color: string, label: string, external: boolean}[]} nodes
 * @param {{x1: number, y1: number, x2: number, y2: number, r2: number, color: string, width: number, protocol: string, title: string}[]} edges
 */
export function svgOf(nodes, edges) {
  let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
  for (const n of nodes) { minX = Math.min(minX, n.x); minY = Math.min(minY, n.y); maxX = Math.max(maxX, n.x); maxY = Math.max(maxY, n.y); }
  if (!nodes.length) { minX = minY = 0; maxX = maxY = 100; }
  const pad = 160;
  const f = (v) => v.toFixed(1);
  const out = ["<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"" + f(minX - pad) + " " + f(minY - pad) + " " + f(maxX - minX + 2 * pad) + " " + f(maxY - minY + 2 * pad) + "\" font-family=\"sans-serif\" font-size=\"12\">",
    "<defs>" + Object.entries(PROTO_COLORS).map(([p, c]) => "<marker id=\"a-" + p + "\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"6\" markerHeight=\"6\" orient=\"auto\"><path d=\"M0,0L10,5L0,10z\" fill=\"" + c + "\"/></marker>").join("") + "</defs>"];
  for (const e of edges) {
    // Stop at the target's rim so the arrow head shows.
    const dx = e.x2 - e.x1, dy = e.y2 - e.y1, d = Math.hypot(dx, dy) || 1;
    const x2 = e.x2 - (dx / d) * e.r2, y2 = e.y2 - (dy / d) * e.r2;
    out.push("<line x1=\"" + f(e.x1) + "\" y1=\"" + f(e.y1) + "\" x2=\"" + f(x2) + "\" y2=\"" + f(y2) + "\" stroke=\"" + e.color + "\" stroke-width=\"" + f(e.width) + "\"" + (PROTO_COLORS[e.protocol] ? " marker-end=\"url(#a-" + e.protocol + ")\"" : "") + " opacity=\"0.8\"><title>" + esc(e.title) + "</title></line>");
  }
  for (const n of nodes) out.push("<circle cx=\"" + f(n.x) + "\" cy=\"" + f(n.y) + "\" r=\"" + f(n.r) + "\" fill=\"" + n.color + "\"" + (n.external ? " stroke=\"#333\" stroke-dasharray=\"3 2\"" : "") + "/><text x=\"" + f(n.x + n.r + 3) + "\" y=\"" + f(n.y + 4) + "\">" + esc(n.label) + "</text>");
  out.push("</svg>");
  return out.join("\n");
}
