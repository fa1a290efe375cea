// @ts-check
// wiremap's service map page: loads the map from /api/map (a window of stored data) or the
// /api/stream WebSocket (live deltas every 500 ms), or from the map embedded in an offline copy;
// wires the controls; keeps the URL and the saved layout in step. Requests go nowhere but to
// the server that served the page.
import { KIND_COLORS, PROTO_COLORS, fmtN, esc, label } from "./format.js";
import { emptyMap, replaceAll, applyDelta, visible } from "./data.js";
import { LayoutStore, layoutKey, parseLayoutJson } from "./layout.js";
import { MapView } from "./render.js";
import { Panel, nodeTip, edgeTip } from "./panels.js";
import { exportAs } from "./exports.js";

/** @typedef {import("./data.js").MapJson} MapJson */
/** @typedef {import("./data.js").Delta} Delta */

/** @param {string} s @returns {any} */
const $ = (s) => document.querySelector(s);
const w = /** @type {any} */ (window);
/** @type {MapJson | null} a map embedded by `wiremap map --format html` */
const OFFLINE = w.WIREMAP_OFFLINE || null;
const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
const token = new URLSearchParams(location.search).get("token") || "";
/** @type {Storage | null} */
let storage = null;
try { storage = window.localStorage; } catch { storage = null; }
const store = new LayoutStore(storage);

const S = {
  map: emptyMap(),
  level: params.get("level") || "workload",
  q: params.get("q") || "",
  win: params.get("window") || "",
  from: params.get("from") || "",
  to: params.get("to") || "",
  paused: false,
  /** @type {Delta[]} */ buffered: [],
  frozen: false,
  group: false,
  /** @type {Set<string>} */ expanded: new Set(),
  hubs: true,
  /** @type {Set<string>} */ hidden: new Set(),
  /** @type {string | null} */ focus: null,
  seq: 0,
  deltas: 0,
  error: "",
  loading: false,
  /** @type {WebSocket | null} */ ws: null,
  layoutKey: "",
  /** @type {{start: number, first: number, settled: number}} milliseconds since the map arrived */
  timing: { start: 0, first: 0, settled: 0 },
  colorByNs: false,
};

// ---- helpers ----
/** @param {string} path @param {Record<string, any>} [extra] */
const api = (path, extra) => {
  const u = new URL(path, location.href);
  if (extra) for (const [k, v] of Object.entries(extra)) if (v !== "" && v != null) u.searchParams.set(k, String(v));
  if (token) u.searchParams.set("token", token);
  return u;
};
/** @returns {Record<string, string>} */
const windowParams = () => {
  if (S.win === "live") return { from: "-15m" };
  if (S.win === "all") return {};
  if (S.win === "custom") return { from: S.from, to: S.to };
  return { from: "-" + S.win };
};
/** @param {string} ns */
const nsColor = (ns) => {
  let h = 0;
  for (const c of ns) h = (h * 31 + c.charCodeAt(0)) >>> 0;
  return "hsl(" + (h % 360) + ",55%,55%)";
};
/** @param {import("./data.js").MapNode} d */
const nodeColor = (d) => (d.namespace && d.kind !== "namespace" && S.colorByNs ? nsColor(d.namespace) : KIND_COLORS[/** @type {keyof typeof KIND_COLORS} */ (d.kind)] || "#999999");
const currentKey = () => layoutKey(S.level, S.q, S.group);

function saveUrl() {
  const p = new URLSearchParams();
  if (S.q) p.set("q", S.q);
  p.set("level", S.level);
  p.set("window", S.win);
  if (S.win === "custom") { p.set("from", S.from); p.set("to", S.to); }
  history.replaceState(null, "", location.pathname + location.search + "#" + p.toString());
}

// ---- the view ----
const panel = new Panel({
  offline: !!OFFLINE,
  api,
  query: () => { const q = Object.assign({ level: S.level, q: S.q }, windowParams()); if (S.win === "live") delete q.from; return q; },
  nodeById: (id) => (view.vis ? view.vis.byId.get(id) : undefined),
  onClose: () => { view.selectedNode = null; view.selectedEdge = null; view.rank(); view.sigma.refresh(); },
});
const view = new MapView($("#graph"), {
  onNode(id) {
    const n = view.vis && view.vis.byId.get(id);
    if (!n) return;
    if (n.data.group && n.data.namespace) { S.expanded.add(n.data.namespace); redraw(false); return; }
    select(id, null);
    panel.showNode(n);
  },
  onEdge(key) {
    const e = view.vis && view.vis.edges.find((x) => x.key === key);
    const a = e && view.vis && view.vis.byId.get(e.source), b = e && view.vis && view.vis.byId.get(e.target);
    if (!e || !a || !b) return;
    select(null, key);
    panel.showEdge(e, a, b);
  },
  onStage() { panel.close(); },
  onHover(what, x, y) {
    const tt = $("#tooltip");
    const vis = view.vis;
    if (!what || !vis) { tt.hidden = true; return; }
    let h = "";
    if (what.node) { const n = vis.byId.get(what.node); if (n) h = nodeTip(n, vis.badges.get(n.id) || 0); }
    else if (what.edge) {
      const e = vis.edges.find((x) => x.key === what.edge);
      const a = e && vis.byId.get(e.source), b = e && vis.byId.get(e.target);
      if (e && a && b) h = edgeTip(e, a, b);
    }
    if (!h) { tt.hidden = true; return; }
    tt.innerHTML = h;
    tt.hidden = false;
    tt.style.left = Math.min(x + 14, $("#graph").clientWidth - 300) + "px";
    tt.style.top = y + 14 + "px";
  },
  onPinned() { saveLayoutSoon(); },
  onUnpinned() { saveLayoutSoon(); },
});
/** @param {string | null} node @param {string | null} edge */
function select(node, edge) {
  view.selectedNode = node; view.selectedEdge = edge;
  view.rank();
  view.sigma.refresh();
}

let saveTimer = 0;
function saveLayoutSoon() {
  clearTimeout(saveTimer);
  saveTimer = window.setTimeout(() => store.save(S.layoutKey, view.pos), 300);
}

/**
 * Redraws from the data. `fresh`: a new map (load, level, filter, window): positions come from
 * the saved layout for this view when there is one, else from a fresh layout; then the map is
 * fitted to the screen. Otherwise (a delta, a toggle) only newcomers get places, near their
 * neighbours, and nothing else moves.
 * @param {boolean} fresh
 */
function redraw(fresh) {
  const vis = visible(S.map, { hidden: S.hidden, group: S.group, expanded: S.expanded, hubs: S.hubs, keep: new Set([S.focus, view.selectedNode].filter((x) => !!x).map(String)) });
  const key = currentKey();
  if (key !== S.layoutKey) {
    view.stop();
    S.layoutKey = key;
    view.pos = store.load(key) || new Map();
  }
  const missing = view.place(vis);
  view.sync(vis, nodeColor);
  buildLegend();
  if (fresh) {
    if (missing === vis.nodes.length && vis.nodes.length && !S.frozen) relayout();
    else { if (missing) saveLayoutSoon(); settle(); }
  } else if (missing) saveLayoutSoon();
}

function settle() {
  view.fit();
  if (!S.timing.settled) S.timing.settled = performance.now() - S.timing.start;
  setStatus();
}

async function relayout() {
  setStatus();
  const done = await view.layout(() => setStatus());
  if (!done) return;
  store.save(S.layoutKey, view.pos);
  settle();
}

/** A full map arrived. @param {MapJson} map */
function show(map) {
  S.timing = { start: performance.now(), first: 0, settled: 0 };
  replaceAll(S.map, map);
  redraw(true);
  requestAnimationFrame(() => { S.timing.first = performance.now() - S.timing.start; });
}
/** @param {Delta} d */
function delta(d) {
  const r = applyDelta(S.map, d);
  redraw(false);
  if (r.added.length) refreshNames();
}

function refreshNames() {
  const dl = $("#nodenames");
  dl.replaceChildren(...[...S.map.nodes.values()].map((n) => label(n)).sort().slice(0, 3000).map((n) => { const o = document.createElement("option"); o.value = n; return o; }));
}

function buildLegend() {
  const present = [...new Set([...S.map.edges.values()].map((e) => e.protocol))].sort();
  const el = $("#legend");
  const want = present.join(",");
  if (el.dataset.protocols === want) return;
  el.dataset.protocols = want;
  el.replaceChildren();
  for (const p of present) {
    const b = document.createElement("button");
    b.type = "button";
    b.dataset.protocol = p;
    b.setAttribute("aria-pressed", String(!S.hidden.has(p)));
    const i = document.createElement("i");
    i.style.background = PROTO_COLORS[/** @type {keyof typeof PROTO_COLORS} */ (p)] || "#888";
    b.append(i, p);
    b.onclick = () => { if (S.hidden.has(p)) S.hidden.delete(p); else S.hidden.add(p); b.setAttribute("aria-pressed", String(!S.hidden.has(p))); redraw(false); };
    el.appendChild(b);
  }
}

function closeStream() {
  if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
}
function setStatus() {
  const s = S.map.stats;
  const parts = [];
  parts.push(S.map.nodes.size + " nodes, " + S.map.edges.size + " edges");
  if (OFFLINE) parts.push("offline copy");
  else if (S.win === "live") parts.push(S.paused ? "paused" : "live, seq " + S.seq);
  else if (S.win === "all") parts.push("all stored data");
  if (view.layoutRunning) parts.push("laying out…");
  if (s && s.entries !== undefined) parts.push(fmtN(s.entries) + " entries");
  if (s && s.dropped && Object.keys(s.dropped).length) parts.push("dropped: " + Object.entries(s.dropped).map(([k, v]) => k + " " + v).join(", "));
  if (S.error) parts.push("error: " + S.error);
  $("#status").textContent = parts.join(" · ");
  $("#buffered").textContent = S.paused && S.buffered.length ? S.buffered.length + " updates held" : "";
}

async function load() {
  saveUrl();
  closeStream();
  S.buffered = [];
  S.error = "";
  if (OFFLINE) { show(OFFLINE); setStatus(); return; }
  S.loading = true;
  if (S.win === "live") {
    const u = api("/api/stream", Object.assign({ level: S.level, q: S.q }, windowParams()));
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    const ws = new WebSocket(u);
    S.ws = ws;
    ws.onmessage = (ev) => {
      const m = JSON.parse(ev.data);
      if (m.type === "snapshot") { S.seq = m.seq; show(m.map); refreshNames(); S.loading = false; }
      else if (m.type === "delta") {
        if (m.seq !== S.seq + 1) { ws.send(JSON.stringify({ type: "snapshot" })); return; }
        S.seq = m.seq;
        S.deltas++;
        if (S.paused) S.buffered.push(m); else delta(m);
      }
      setStatus();
    };
    ws.onclose = () => { if (S.ws === ws) { S.error = "stream closed; retrying"; setStatus(); setTimeout(() => { if (S.ws === ws) load(); }, 2000); } };
  } else {
    try {
      const r = await fetch(api("/api/map", Object.assign({ level: S.level, q: S.q }, windowParams())));
      const body = await r.json();
      if (!r.ok) throw new Error(body.error || r.statusText);
      show(body);
      refreshNames();
    } catch (e) { S.error = /** @type {Error} */ (e).message; }
    S.loading = false;
    setStatus();
  }
}

// ---- controls ----
const kfl = $("#kfl");
const historyKey = "wiremap.kfl.history";
const loadHistory = () => { try { return JSON.parse((storage && storage.getItem(historyKey)) || "[]"); } catch { return []; } };
const showHistory = () => { $("#kflhistory").replaceChildren(...loadHistory().map((h) => { const o = document.createElement("option"); o.value = h; return o; })); };
let checkSeq = 0;
/** @param {string} text */
async function check(text) {
  const mine = ++checkSeq;
  if (OFFLINE || !text.trim()) { kfl.classList.remove("bad"); $("#kflerror").textContent = ""; return true; }
  const r = await fetch(api("/api/kfl/check", { q: text }));
  const b = await r.json();
  if (mine !== checkSeq) return b.ok;
  if (b.ok) { kfl.classList.remove("bad"); $("#kflerror").textContent = ""; }
  else {
    kfl.classList.add("bad");
    const col = b.error.column || 1;
    $("#kflerror").textContent = b.error.message + "\n" + " ".repeat(Math.max(0, col - 1)) + "^";
  }
  return b.ok;
}
let debounce = 0;
kfl.addEventListener("input", () => { clearTimeout(debounce); debounce = window.setTimeout(() => check(kfl.value), 250); });
/** @param {string} text */
async function applyFilter(text) {
  if (!(await check(text))) return;
  S.q = text.trim();
  if (S.q && storage) { const h = [S.q, ...loadHistory().filter((x) => x !== S.q)].slice(0, 20); storage.setItem(historyKey, JSON.stringify(h)); showHistory(); }
  load();
}
$("#kflform").onsubmit = (ev) => { ev.preventDefault(); applyFilter(kfl.value); };
$("#hidedns").onclick = () => {
  const cur = kfl.value.trim();
  if (/(^|[^\w.])!\s*dns\b/.test(cur)) return;
  kfl.value = cur ? "(" + cur + ") && !dns" : "!dns";
  applyFilter(kfl.value);
};
$("#level").onchange = (ev) => { S.level = ev.target.value; S.expanded.clear(); load(); };
$("#window").onchange = (ev) => {
  S.win = ev.target.value;
  $("#custom").hidden = S.win !== "custom";
  $("#pause").disabled = S.win !== "live";
  if (S.win !== "custom") load();
};
$("#customgo").onclick = () => { S.from = $("#from").value.trim(); S.to = $("#to").value.trim(); load(); };
/** @param {HTMLElement} el @param {boolean} on */
const toggle = (el, on) => el.setAttribute("aria-pressed", String(on));
$("#pause").onclick = () => {
  S.paused = !S.paused;
  toggle($("#pause"), S.paused);
  $("#pause").textContent = S.paused ? "Resume" : "Pause";
  if (!S.paused) { for (const m of S.buffered) applyDelta(S.map, m); S.buffered = []; redraw(false); refreshNames(); }
  setStatus();
};
$("#freeze").onclick = () => { S.frozen = !S.frozen; toggle($("#freeze"), S.frozen); if (S.frozen && view.layoutRunning) { view.stop(); settle(); } };
$("#relayout").onclick = () => {
  store.forget(S.layoutKey);
  for (const [id, p] of view.pos) if (!p.pinned) view.pos.delete(id);
  redraw(false);
  relayout();
};
$("#fit").onclick = () => view.fit();
$("#group").onclick = () => { S.group = !S.group; S.expanded.clear(); toggle($("#group"), S.group); redraw(true); };
$("#hubs").onclick = () => { S.hubs = !S.hubs; toggle($("#hubs"), S.hubs); redraw(false); };
$("#search").addEventListener("change", (ev) => {
  const v = ev.target.value.trim().toLowerCase();
  const nodes = [...S.map.nodes.values()];
  const n = v ? nodes.find((n) => label(n).toLowerCase() === v) || nodes.find((n) => label(n).toLowerCase().includes(v)) : undefined;
  S.focus = n ? (view.vis && view.vis.owner.get(n.id)) || n.id : null;
  view.focus = S.focus;
  redraw(false);
  view.rank();
  view.sigma.refresh();
  if (S.focus) view.centerOn(S.focus);
});
$("#export").onchange = async (ev) => {
  const f = ev.target.value;
  ev.target.value = "";
  await exportAs(f, { map: S.map, level: S.level, view, layoutKey: S.layoutKey });
};
$("#importlayout").onclick = () => $("#layoutfile").click();
$("#layoutfile").onchange = async (ev) => {
  const f = ev.target.files && ev.target.files[0];
  ev.target.value = "";
  if (!f) return;
  try {
    const { pos } = parseLayoutJson(await f.text());
    // An imported layout applies to the view on screen, whatever view it was saved from.
    view.stop();
    view.pos = pos;
    store.save(S.layoutKey, pos);
    redraw(false);
    view.applyPositions();
    view.fit();
    S.error = "";
  } catch (e) { S.error = "layout not imported: " + /** @type {Error} */ (e).message; }
  setStatus();
};
const graphEl = $("#graph");
graphEl.addEventListener("keydown", (/** @type {KeyboardEvent} */ ev) => {
  const step = 60;
  if (ev.key === "ArrowLeft") view.panBy(-step, 0);
  else if (ev.key === "ArrowRight") view.panBy(step, 0);
  else if (ev.key === "ArrowUp") view.panBy(0, -step);
  else if (ev.key === "ArrowDown") view.panBy(0, step);
  else if (ev.key === "+" || ev.key === "=") view.zoom(1.25);
  else if (ev.key === "-") view.zoom(0.8);
  else return;
  ev.preventDefault();
});
document.addEventListener("keydown", (ev) => {
  const t = /** @type {HTMLElement} */ (ev.target);
  if (t.matches("input, select, textarea")) { if (ev.key === "Escape") t.blur(); return; }
  if (ev.key === "/") { ev.preventDefault(); kfl.focus(); }
  else if (ev.key === "p") $("#pause").click();
  else if (ev.key === "f") $("#freeze").click();
  else if (ev.key === "0") view.fit();
  else if (ev.key === "Escape") panel.close();
});
/** @param {string} t */
const setTheme = (t) => { document.documentElement.dataset.theme = t; if (storage) storage.setItem("wiremap.theme", t); view.restyle(); };
$("#theme").onclick = () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");

// What tests and the benchmark read: the data behind the picture, never pixels.
w.wiremap = {
  state: S,
  load, fit: () => view.fit(), replaceAll: (/** @type {MapJson} */ m) => show(m), applyDelta: (/** @type {Delta} */ d) => delta(d),
  view() {
    const vis = view.vis;
    return {
      nodes: vis ? vis.nodes.map((n) => {
        const p = view.pos.get(n.id) || { x: NaN, y: NaN, pinned: false };
        const [sx, sy] = view.toScreen(p.x, p.y);
        return { id: n.id, name: n.data.name, kind: n.data.kind, x: p.x, y: p.y, sx, sy, pinned: p.pinned };
      }) : [],
      edges: vis ? vis.edges.map((e) => ({ source: e.source, target: e.target, protocol: e.protocol, requests: e.requests })) : [],
      seq: S.seq, deltas: S.deltas, paused: S.paused, buffered: S.buffered.length, level: S.level, q: S.q, window: S.win, error: S.error,
      loading: S.loading || view.layoutRunning, frozen: S.frozen, hidden: [...S.hidden], badges: vis ? vis.badges.size : 0, focus: S.focus,
      layingOut: view.layoutRunning, layoutKey: S.layoutKey, timing: { ...S.timing },
      size: view.sigma.getDimensions(), ratio: view.sigma.getCamera().ratio,
    };
  },
  /** Labels drawn in the last frame, as viewport boxes. */
  labels: () => view.labels.map((b) => ({ ...b, text: view.graph.getNodeAttribute(b.id, "label") })),
  /** Viewport point of a node (or of the node it is folded into). @param {string} id */
  nodePoint(id) {
    const v = (view.vis && view.vis.owner.get(id)) || id;
    const [x, y] = view.screenOf(v);
    return Number.isFinite(x) ? [x, y] : null;
  },
  /** Viewport point in the middle of an edge. */
  edgePoint(/** @type {string} */ source, /** @type {string} */ target, /** @type {string} */ protocol) {
    const a = view.screenOf(source), b = view.screenOf(target);
    if (!view.graph.hasEdge(source + "|" + target + "|" + protocol)) return null;
    return [(a[0] + b[0]) / 2, (a[1] + b[1]) / 2];
  },
  /** The edge the renderer picks at a viewport point. */
  pickEdge(/** @type {number} */ x, /** @type {number} */ y) {
    const k = view.sigma.getEdgeAtPoint(x, y);
    const e = k && view.vis && view.vis.edges.find((v) => v.key === k);
    return e ? { source: e.source, target: e.target, protocol: e.protocol, requests: e.requests } : null;
  },
  zoom: (/** @type {number} */ f) => view.zoom(f),
  panBy: (/** @type {number} */ dx, /** @type {number} */ dy) => view.panBy(dx, dy),
  relayout: () => relayout(),
  frameStats() {
    const g = view.frameGaps.slice().sort((a, b) => a - b), d = view.renderTimes.slice().sort((a, b) => a - b);
    const pct = (/** @type {number[]} */ a, /** @type {number} */ p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : 0);
    return { frames: g.length, gap_p50: pct(g, 0.5), gap_p95: pct(g, 0.95), draw_p50: pct(d, 0.5), draw_p95: pct(d, 0.95), fps: g.length ? 1000 / (g.reduce((a, b) => a + b, 0) / g.length) : 0, layout_ms: view.layoutMs, layout_parts: view.timings };
  },
  resetFrames() { view.frameGaps.length = 0; view.renderTimes.length = 0; view.lastRender = 0; },
  esc,
};

// ---- start ----
kfl.value = S.q;
$("#level").value = S.level;
showHistory();
setTheme(params.get("theme") || (storage && storage.getItem("wiremap.theme")) || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
if (OFFLINE) for (const id of ["#kflform", "#window", "#pause", "#buffered"]) $(id).hidden = true;
setInterval(setStatus, 1000);
(async () => {
  // The first view: a live capture opens on "live", stored or imported data on all of it.
  if (!S.win) {
    S.win = "all";
    if (!OFFLINE) try { const r = await fetch(api("/api/stats")); if (r.ok && (await r.json()).capturing) S.win = "live"; } catch { /* stays "all" */ }
  }
  $("#window").value = S.win;
  $("#pause").disabled = S.win !== "live";
  if (S.win === "custom") { $("#custom").hidden = false; $("#from").value = S.from; $("#to").value = S.to; }
  load();
})();
