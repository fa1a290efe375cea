// @ts-check
// The tooltip and the side panel: a node's or an edge's figures, the entries behind it (from
// /api/entries) and one entry in full.
import { fmtN, fmtUs, fmtB, esc, edgeKey, label, statsRows, summary, entryDetail } from "./format.js";

/** @typedef {import("./data.js").VisNode} VisNode */
/** @typedef {import("./data.js").VisEdge} VisEdge */
/**
 * @typedef {{offline: boolean, api: (path: string, extra?: Record<string, any>) => URL,
 *   query: () => Record<string, string>, nodeById: (id: string) => VisNode | undefined,
 *   onClose: () => void}} PanelContext
 */

/** @param {string} s @returns {HTMLElement} */
const $ = (s) => /** @type {HTMLElement} */ (document.querySelector(s));

/** @param {VisNode} n @param {number} badge @returns {string} */
export function nodeTip(n, badge) {
  const d = n.data;
  return "<b>" + esc(label(d)) + "</b>" + esc(d.kind) + (d.external ? ", external" : "") + "<br>in " + fmtN(d.requests_in || 0) + " · out " + fmtN(d.requests_out || 0) +
    (d.addresses && d.addresses.length ? "<br><span class=muted>" + esc(d.addresses.slice(0, 4).join(", ")) + "</span>" : "") +
    (d.folded ? "<br>" + fmtN(d.folded) + " endpoints folded here" : "") + (badge ? "<br>" + badge + " edges collapsed" : "");
}

/** @param {VisEdge} e @param {VisNode} a @param {VisNode} b @returns {string} */
export function edgeTip(e, a, b) {
  const d = e.data;
  return "<b>" + esc(label(a.data)) + " → " + esc(label(b.data)) + "</b>" + esc(e.protocol) + "<br>requests " + fmtN(e.requests) + " · errors " + fmtN(e.errors) +
    (e.members.length === 1 && d.latency_us && d.bytes ? "<br>latency p50 " + fmtUs(d.latency_us.p50) + " · p99 " + fmtUs(d.latency_us.p99) + "<br>bytes ↑ " + fmtB(d.bytes.request) + " ↓ " + fmtB(d.bytes.response) : "<br>" + e.members.length + " edges grouped");
}

export class Panel {
  /** @param {PanelContext} ctx */
  constructor(ctx) {
    this.ctx = ctx;
    /** @type {VisEdge | null} */ this.edge = null;
    /** @type {string | null} */ this.node = null;
    $("#close").onclick = () => this.close();
  }
  close() {
    $("#panel").hidden = true;
    this.edge = null; this.node = null;
    this.ctx.onClose();
  }
  /** @param {VisNode} n */
  showNode(n) {
    const d = n.data;
    this.node = d.id; this.edge = null;
    const labels = Object.entries(d.labels || {}).map(([k, v]) => esc(k) + "=" + esc(v)).join("<br>");
    const body = "<h2>" + esc(label(d)) + "</h2>" + statsRows([
      ["id", esc(d.id)], ["kind", esc(d.kind) + (d.external ? " (external)" : "")], ["namespace", esc(d.namespace || "—")],
      ["requests in", fmtN(d.requests_in || 0)], ["requests out", fmtN(d.requests_out || 0)],
      ["addresses", esc((d.addresses || []).join(", "))], ["labels", labels || "—"],
    ].concat(d.folded ? [["folded", fmtN(d.folded) + " endpoints past the map's node budget (--max-nodes)"]] : []));
    this.open(body, { node: d.id });
  }
  /** @param {VisEdge} e @param {VisNode} a @param {VisNode} b */
  showEdge(e, a, b) {
    this.edge = e; this.node = null;
    const d = e.data;
    const lat = d.latency_us ? fmtUs(d.latency_us.p50) + " / " + fmtUs(d.latency_us.p90) + " / " + fmtUs(d.latency_us.p99) : "—";
    const body = "<h2>" + esc(label(a.data)) + " → " + esc(label(b.data)) + "</h2>" + statsRows([
      ["protocol", esc(e.protocol)], ["requests", fmtN(e.requests)], ["responses", fmtN(d.responses || 0)], ["errors", fmtN(e.errors)],
      ["latency p50 / p90 / p99", lat],
      ["bytes request / response", d.bytes ? fmtB(d.bytes.request) + " / " + fmtB(d.bytes.response) : "—"],
      ["first / last seen", esc(d.first_seen || "") + "<br>" + esc(d.last_seen || "")],
    ].concat(d.nodes && d.nodes.length ? [["seen by", d.nodes.map(esc).join(", ")]] : []));
    this.open(body, e.members.length === 1 ? { edge: edgeKey(d) } : { node: a.data.id });
  }
  /** @param {string} head @param {Record<string, string>} part */
  async open(head, part) {
    $("#panel").hidden = false;
    const pb = $("#panelbody");
    if (this.ctx.offline) { pb.innerHTML = head + "<p class=muted>Entries are not part of an offline map.</p>"; return; }
    const q = Object.assign(this.ctx.query(), part);
    const exportUrl = this.ctx.api("/api/export.pcapng", q);
    pb.innerHTML = head + "<p><a id=exportpart href=\"" + esc(exportUrl) + "\" download>Export these as pcapng</a></p><h3>Entries</h3><div id=entries class=muted>loading…</div>";
    try {
      const r = await fetch(this.ctx.api("/api/entries", Object.assign({ limit: 200 }, q)));
      const body = await r.json();
      if (!r.ok) throw new Error(body.error);
      const rows = body.entries.map((x) => "<tr tabindex=0 data-id=\"" + esc(x.id) + "\"><td>" + esc(String(x.timestamp).slice(11, 23)) + "</td><td>" + esc(x.protocol) + "</td><td>" + esc(summary(x)) + "</td><td class=\"" + (x.error ? "err" : "") + "\">" + esc(x.status_code) + "</td><td>" + fmtUs(x.elapsed_time) + "</td></tr>").join("");
      const el = $("#entries");
      el.className = "";
      el.innerHTML = body.entries.length ? "<table class=entries><tr><th>time</th><th>proto</th><th>summary</th><th>status</th><th>latency</th></tr>" + rows + "</table>" + (body.next_cursor ? "<p class=muted>first 200 shown</p>" : "") : "<p class=muted>no entries in this window</p>";
      for (const tr of el.querySelectorAll("tr[data-id]")) {
        const row = /** @type {HTMLElement} */ (tr);
        const open = () => this.showEntry(row.dataset.id || "");
        row.onclick = open;
        row.onkeydown = (ev) => { if (ev.key === "Enter") open(); };
      }
    } catch (e) { $("#entries").textContent = "error: " + /** @type {Error} */ (e).message; }
  }
  /** @param {string} id */
  async showEntry(id) {
    const pb = $("#panelbody");
    const back = "<button type=button id=back>← back</button>";
    try {
      const r = await fetch(this.ctx.api("/api/entries/" + encodeURIComponent(id)));
      const x = await r.json();
      if (!r.ok) throw new Error(x.error);
      pb.innerHTML = back + entryDetail(x);
    } catch (e) { pb.innerHTML = back + "<p class=err>" + esc(/** @type {Error} */ (e).message) + "</p>"; }
    $("#back").onclick = () => {
      if (this.edge) { const e = this.edge, a = this.ctx.nodeById(e.source), b = this.ctx.nodeById(e.target); if (a && b) this.showEdge(e, a, b); }
      else if (this.node) { const n = this.ctx.nodeById(this.node); if (n) this.showNode(n); }
    };
  }
}
