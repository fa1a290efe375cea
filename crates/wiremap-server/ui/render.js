// @ts-check
// The map on screen: a graphology graph drawn by sigma.js (WebGL), laid out by ForceAtlas2 in a
// web worker (a fixed number of iterations, so the same map lays out the same way) and then
// noverlap; labels drawn on a canvas of their own by a greedy pass that never lets two overlap.
import { Graph, Sigma, FA2Layout, forceAtlas2, noverlap } from "./vendor/graph.js";
import { PROTO_COLORS, KIND_COLORS, label } from "./format.js";
import { seedPosition, placeNear } from "./layout.js";

/** @typedef {import("./data.js").Visible} Visible */
/** @typedef {import("./data.js").VisNode} VisNode */
/** @typedef {import("./data.js").VisEdge} VisEdge */
/** @typedef {import("./layout.js").Pos} Pos */
/** @typedef {{id: string, x0: number, y0: number, x1: number, y1: number}} LabelBox */
/**
 * @typedef {{onNode: (id: string) => void, onEdge: (key: string) => void, onStage: () => void,
 *   onHover: (what: {node?: string, edge?: string} | null, x: number, y: number) => void,
 *   onPinned: () => void, onUnpinned: (id: string) => void}} Hooks
 */

const LABEL_FONT = "12px system-ui, sans-serif";
const LABEL_H = 16;
/** Labels drawn at most per frame: past this the rest of the screen is a blur anyway. */
const MAX_LABELS = 600;
/** Lay out maps past this many edges with the Barnes–Hut approximation. */
const BARNES_HUT_NODES = 300;

/** ForceAtlas2 iterations for a map of `n` nodes: fixed per size, so the result is repeatable. */
export const iterationsFor = (n) => (n > 1000 ? 150 : 300);

export class MapView {
  /** @param {HTMLElement} container @param {Hooks} hooks */
  constructor(container, hooks) {
    this.container = container;
    this.hooks = hooks;
    this.graph = new Graph({ multi: true, type: "directed", allowSelfLoops: true });
    /** @type {Map<string, Pos>} where every node is, in graph coordinates (the truth) */
    this.pos = new Map();
    /** @type {Visible | null} */
    this.vis = null;
    /** @type {string | null} */ this.focus = null;
    /** @type {string | null} */ this.selectedNode = null;
    /** @type {string | null} */ this.selectedEdge = null;
    /** @type {Set<string> | null} */ this.near = null;
    /** @type {LabelBox[]} */ this.labels = [];
    /** @type {string[]} label candidates, most important first */ this.order = [];
    /** @type {Map<string, number>} */ this.widths = new Map();
    this.layoutRunning = false;
    this.layoutGen = 0;
    this.layoutMs = 0;
    /** @type {Record<string, number>} */ this.timings = {};
    /** @type {number[]} */ this.renderTimes = [];
    /** @type {number[]} */ this.frameGaps = [];
    this.lastRender = 0;
    this.dragging = /** @type {string | null} */ (null);
    this.dragMoved = false;
    const css = getComputedStyle(document.documentElement);
    this.sigma = new Sigma(this.graph, container, {
      renderLabels: false,
      defaultEdgeType: "arrow",
      enableEdgeEvents: true,
      stagePadding: 40,
      minCameraRatio: 0.01,
      maxCameraRatio: 10,
      zIndex: true,
      defaultDrawNodeHover: () => {},
      nodeReducer: (id, d) => (this.near && !this.near.has(id) ? { ...d, color: fade(d.color), zIndex: 0 } : { ...d, zIndex: 1 }),
      edgeReducer: (id, d) => {
        if (id === this.selectedEdge) return { ...d, size: d.size + 3, zIndex: 2 };
        if (!this.near) return d;
        const [s, t] = [this.graph.source(id), this.graph.target(id)];
        return this.near.has(s) && this.near.has(t) ? { ...d, zIndex: 1 } : { ...d, color: fade(d.color), zIndex: 0 };
      },
    });
    this.labelColor = css.getPropertyValue("--label").trim() || "#1b1f24";
    this.overlay = document.createElement("canvas");
    this.overlay.className = "labels";
    container.appendChild(this.overlay);
    const ctx = this.overlay.getContext("2d");
    if (!ctx) throw new Error("no 2D canvas");
    this.ctx = ctx;
    this.sigma.on("beforeRender", () => { this.renderStart = performance.now(); });
    this.sigma.on("afterRender", () => {
      this.drawLabels();
      const now = performance.now();
      this.renderTimes.push(now - (this.renderStart || now));
      if (this.lastRender) this.frameGaps.push(now - this.lastRender);
      this.lastRender = now;
      for (const a of [this.renderTimes, this.frameGaps]) if (a.length > 600) a.shift();
    });
    this.sigma.on("clickNode", (e) => hooks.onNode(e.node));
    this.sigma.on("clickEdge", (e) => hooks.onEdge(e.edge));
    this.sigma.on("clickStage", () => hooks.onStage());
    this.sigma.on("enterNode", (e) => hooks.onHover({ node: e.node }, e.event.x, e.event.y));
    this.sigma.on("enterEdge", (e) => hooks.onHover({ edge: e.edge }, e.event.x, e.event.y));
    this.sigma.on("leaveNode", () => hooks.onHover(null, 0, 0));
    this.sigma.on("leaveEdge", () => hooks.onHover(null, 0, 0));
    this.sigma.on("doubleClickNode", (e) => {
      e.preventSigmaDefault();
      const p = this.pos.get(e.node);
      if (p && p.pinned) { p.pinned = false; this.sigma.refresh(); hooks.onUnpinned(e.node); }
    });
    // Drag a node to move and pin it; the normalisation holds still meanwhile.
    this.sigma.on("downNode", (e) => {
      this.dragging = e.node;
      this.dragMoved = false;
      if (!this.sigma.getCustomBBox()) this.sigma.setCustomBBox(this.sigma.getBBox());
    });
    const mouse = this.sigma.getMouseCaptor();
    mouse.on("mousemovebody", (e) => {
      if (!this.dragging) return;
      const g = this.sigma.viewportToGraph(e);
      const p = this.pos.get(this.dragging);
      if (p) { p.x = g.x; p.y = g.y; p.pinned = true; }
      this.graph.mergeNodeAttributes(this.dragging, { x: g.x, y: g.y });
      this.dragMoved = true;
      e.preventSigmaDefault();
      e.original.preventDefault();
      e.original.stopPropagation();
    });
    mouse.on("mouseup", () => {
      if (this.dragging && this.dragMoved) hooks.onPinned();
      this.dragging = null;
      this.sigma.setCustomBBox(null);
    });
  }

  /** The theme changed: labels take the new colour. */
  restyle() {
    this.labelColor = getComputedStyle(document.documentElement).getPropertyValue("--label").trim() || this.labelColor;
    this.sigma.refresh();
  }

  /**
   * Gives every drawn node a place: a folded namespace the middle of its members, a newcomer
   * a place next to its neighbours.
   * @param {Visible} vis @returns {number} how many nodes had none
   */
  place(vis) {
    let missing = 0;
    const n = vis.nodes.length;
    /** @type {Map<string, {x: number, y: number}[]>} */
    const nb = new Map();
    const known = (id) => this.pos.get(id);
    for (const e of vis.edges) {
      const a = known(e.source), b = known(e.target);
      if (b && !a) { const l = nb.get(e.source) || []; l.push(b); nb.set(e.source, l); }
      if (a && !b) { const l = nb.get(e.target) || []; l.push(a); nb.set(e.target, l); }
    }
    const spread = this.spread();
    for (const v of vis.nodes) {
      if (this.pos.has(v.id)) continue;
      missing++;
      const members = v.members.map(known).filter((p) => !!p);
      if (v.id !== v.members[0] && members.length) {
        this.pos.set(v.id, { ...placeNear(v.id, /** @type {Pos[]} */ (members), n, 0), pinned: false });
        continue;
      }
      // A namespace expanded again: its members start where its node was.
      const group = v.data.namespace ? known("group:" + v.data.namespace) : undefined;
      const near = nb.get(v.id) || (group ? [group] : []);
      this.pos.set(v.id, { ...placeNear(v.id, near, n, spread), pinned: false });
    }
    return missing;
  }

  /** A typical distance between neighbours, for placing newcomers near theirs. */
  spread() {
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const p of this.pos.values()) { minX = Math.min(minX, p.x); minY = Math.min(minY, p.y); maxX = Math.max(maxX, p.x); maxY = Math.max(maxY, p.y); }
    if (!Number.isFinite(minX)) return 10;
    return Math.max(1, Math.max(maxX - minX, maxY - minY) / Math.sqrt(Math.max(1, this.pos.size)) / 2);
  }

  /**
   * Makes the graph show `vis` at the positions in `pos`, touching only what changed (a live
   * delta updates a few edges; sigma then redraws without reprocessing everything).
   * @param {Visible} vis @param {(d: import("./data.js").MapNode) => string} colorOf
   */
  sync(vis, colorOf) {
    this.vis = vis;
    const g = this.graph;
    const dropN = [];
    g.forEachNode((id) => { if (!vis.byId.has(id)) dropN.push(id); });
    for (const id of dropN) g.dropNode(id);
    const keys = new Set(vis.edges.map((e) => e.key));
    const dropE = [];
    g.forEachEdge((k) => { if (!keys.has(k)) dropE.push(k); });
    for (const k of dropE) g.dropEdge(k);
    // Radius in screen pixels by traffic; smaller in big maps, where discs would cover each other.
    const base = vis.nodes.length > 500 ? 2 : 3, cap = Math.min(11, 250 / Math.sqrt(Math.max(1, vis.nodes.length)));
    for (const v of vis.nodes) {
      const p = this.pos.get(v.id) || { x: 0, y: 0 };
      const d = v.data;
      const size = base + Math.min(cap, Math.sqrt((d.requests_in || 0) + (d.requests_out || 0)) * 0.5);
      const attrs = { x: p.x, y: p.y, size, color: colorOf(d), label: label(d) };
      if (!g.hasNode(v.id)) g.addNode(v.id, attrs);
      else {
        const a = g.getNodeAttributes(v.id);
        if (a.x !== attrs.x || a.y !== attrs.y || a.size !== attrs.size || a.color !== attrs.color || a.label !== attrs.label) g.replaceNodeAttributes(v.id, attrs);
      }
    }
    const maxReq = vis.edges.reduce((m, e) => Math.max(m, e.requests), 1);
    const dense = vis.edges.length > 2000;
    for (const e of vis.edges) {
      const size = Math.round((dense ? 0.5 + 2 * Math.log1p(e.requests) / Math.log1p(maxReq) : 1 + 4 * Math.log1p(e.requests) / Math.log1p(maxReq)) * 10) / 10;
      const color = PROTO_COLORS[e.protocol] || "#888888";
      if (!g.hasEdge(e.key)) g.addDirectedEdgeWithKey(e.key, e.source, e.target, { size, color });
      else {
        const a = g.getEdgeAttributes(e.key);
        if (a.size !== size || a.color !== color) g.mergeEdgeAttributes(e.key, { size, color });
      }
    }
    this.rank();
  }

  /** Orders label candidates: what the user looks at, then the busiest. */
  rank() {
    if (!this.vis) return;
    const first = new Set([this.selectedNode, this.focus].filter((x) => !!x));
    const traffic = (v) => (v.data.requests_in || 0) + (v.data.requests_out || 0);
    this.order = this.vis.nodes.slice().sort((a, b) => (first.has(b.id) ? 1 : 0) - (first.has(a.id) ? 1 : 0) || traffic(b) - traffic(a) || (a.id < b.id ? -1 : a.id > b.id ? 1 : 0)).map((v) => v.id);
    this.near = null;
    if (this.focus && this.graph.hasNode(this.focus)) {
      const f = this.focus;
      this.near = new Set([f, ...this.graph.neighbors(f)]);
    }
  }

  /** Copies positions into the graph (after a layout step). */
  applyPositions() {
    this.graph.updateEachNodeAttributes((id, a) => {
      const p = this.pos.get(id);
      return p ? { ...a, x: p.x, y: p.y } : a;
    }, { attributes: ["x", "y"] });
  }

  /**
   * Lays the drawn graph out from scratch: seed positions, ForceAtlas2 for a fixed number of
   * iterations in a worker (pinned nodes stay put), then noverlap. Resolves when done (false if
   * a newer layout or `stop()` overtook it).
   * @param {(p: number) => void} progress
   */
  async layout(progress) {
    const gen = ++this.layoutGen;
    const t0 = performance.now();
    const lg = new Graph({ type: "undirected" });
    const n = this.graph.order;
    this.graph.forEachNode((id, a) => {
      const p = this.pos.get(id);
      const pinned = !!(p && p.pinned);
      const s = pinned && p ? p : seedPosition(id, n);
      lg.addNode(id, { x: s.x, y: s.y, size: a.size, fixed: pinned });
    });
    this.graph.forEachEdge((k, a, s, t) => { if (s !== t && !lg.hasEdge(s, t)) lg.addEdge(s, t); });
    if (n === 0) return true;
    const iterations = iterationsFor(n);
    const settings = { ...forceAtlas2.inferSettings(lg), barnesHutOptimize: n > BARNES_HUT_NODES, strongGravityMode: true, gravity: 1 };
    this.layoutRunning = true;
    try {
      // Progress is reported, not drawn: redrawing while the worker iterates would stall the
      // messages that drive it.
      await runFA2(lg, settings, iterations, () => gen === this.layoutGen, (i) => progress(i / iterations));
    } catch (e) {
      // No worker (blocked by a policy or unsupported): the same iterations on this thread.
      if (gen === this.layoutGen) forceAtlas2.assign(lg, { iterations, settings });
    }
    if (gen !== this.layoutGen) return false;
    // noverlap in graph units: node sizes scaled from screen pixels by the fitted view.
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    lg.forEachNode((id, a) => { minX = Math.min(minX, a.x); minY = Math.min(minY, a.y); maxX = Math.max(maxX, a.x); maxY = Math.max(maxY, a.y); });
    const dim = this.sigma.getDimensions();
    const scale = Math.max(maxX - minX, maxY - minY, 1) / Math.max(200, Math.min(dim.width, dim.height) - 80);
    lg.updateEachNodeAttributes((id, a) => ({ ...a, size: (a.size + 2) * scale }));
    this.timings = { fa2: performance.now() - t0 };
    noverlap.assign(lg, { maxIterations: n > 1000 ? 20 : 60, settings: { margin: 2 * scale, ratio: 1, expansion: 1.05 } });
    // noverlap moves pinned nodes too; they go back.
    lg.forEachNode((id, a) => { const p = this.pos.get(id); if (!(p && p.pinned)) copy1(this.pos, id, /** @type {{x: number, y: number}} */ (a)); });
    this.applyPositions();
    this.layoutRunning = false;
    this.layoutMs = performance.now() - t0;
    this.timings.all = this.layoutMs;
    return true;
  }
  stop() { this.layoutGen++; this.layoutRunning = false; }

  /** The whole map in view. */
  fit() {
    this.sigma.setCustomBBox(null);
    this.sigma.refresh();
    this.sigma.getCamera().setState({ x: 0.5, y: 0.5, ratio: 1, angle: 0 });
  }
  /** @param {number} f */
  zoom(f) {
    const c = this.sigma.getCamera();
    c.setState({ ratio: Math.min(10, Math.max(0.01, c.ratio / f)) });
  }
  /** @param {number} dx @param {number} dy screen pixels */
  panBy(dx, dy) {
    const c = this.sigma.getCamera();
    const a = this.sigma.viewportToFramedGraph({ x: 0, y: 0 }), b = this.sigma.viewportToFramedGraph({ x: dx, y: dy });
    c.setState({ x: c.x - (b.x - a.x), y: c.y - (b.y - a.y) });
  }
  /** @param {string} id */
  centerOn(id) {
    const d = this.sigma.getNodeDisplayData(id);
    if (d) this.sigma.getCamera().setState({ x: d.x, y: d.y });
  }
  /** Viewport coordinates of a graph point. @param {number} x @param {number} y @returns {[number, number]} */
  toScreen(x, y) {
    const p = this.sigma.graphToViewport({ x, y });
    return [p.x, p.y];
  }

  /** Labels on their own canvas, most important first, each only where it overlaps none. */
  drawLabels() {
    const dpr = window.devicePixelRatio || 1;
    const { width, height } = this.sigma.getDimensions();
    const cv = this.overlay;
    if (cv.width !== Math.round(width * dpr) || cv.height !== Math.round(height * dpr)) {
      cv.width = Math.round(width * dpr); cv.height = Math.round(height * dpr);
      cv.style.width = width + "px"; cv.style.height = height + "px";
    }
    const ctx = this.ctx;
    ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
    ctx.clearRect(0, 0, width, height);
    ctx.font = LABEL_FONT;
    ctx.textBaseline = "middle";
    /** @type {LabelBox[]} */
    const boxes = [];
    const cell = 64;
    /** @type {Map<number, LabelBox[]>} */
    const grid = new Map();
    const cols = Math.ceil(width / cell) + 1;
    const hits = (b) => {
      for (let gx = Math.floor(b.x0 / cell); gx <= Math.floor(b.x1 / cell); gx++) for (let gy = Math.floor(b.y0 / cell); gy <= Math.floor(b.y1 / cell); gy++) {
        for (const o of grid.get(gy * cols + gx) || []) if (b.x0 < o.x1 && o.x0 < b.x1 && b.y0 < o.y1 && o.y0 < b.y1) return true;
      }
      return false;
    };
    const add = (b) => {
      for (let gx = Math.floor(b.x0 / cell); gx <= Math.floor(b.x1 / cell); gx++) for (let gy = Math.floor(b.y0 / cell); gy <= Math.floor(b.y1 / cell); gy++) {
        const k = gy * cols + gx; const l = grid.get(k); if (l) l.push(b); else grid.set(k, [b]);
      }
    };
    /** @type {[number, number, number, number, string][]} x, y, radius, width, colour */
    const rings = [];
    // Node discs on screen are obstacles too: a label never covers another node.
    /** @type {Map<string, LabelBox>} */
    const discs = new Map();
    for (const id of this.order) {
      if (this.near && !this.near.has(id)) continue;
      const d = this.sigma.getNodeDisplayData(id);
      if (!d || d.hidden) continue;
      const p = this.sigma.framedGraphToViewport(d);
      if (p.x < -20 || p.y < -20 || p.x > width + 20 || p.y > height + 20) continue;
      const r = this.sigma.scaleSize(d.size);
      const b = { id, x0: p.x - r, y0: p.y - r, x1: p.x + r, y1: p.y + r };
      discs.set(id, b);
      add(b);
    }
    for (const id of this.order) {
      if (boxes.length >= MAX_LABELS) break;
      if (this.near && !this.near.has(id)) continue;
      const disc = discs.get(id);
      if (!disc || disc.x0 + disc.x1 < 0 || disc.y0 + disc.y1 < 0 || disc.x0 + disc.x1 > 2 * width || disc.y0 + disc.y1 > 2 * height) continue;
      const p = { x: (disc.x0 + disc.x1) / 2, y: (disc.y0 + disc.y1) / 2 }, r = (disc.x1 - disc.x0) / 2;
      const text = /** @type {string} */ (this.graph.getNodeAttribute(id, "label")) || id;
      let w = this.widths.get(text);
      if (w === undefined) { w = ctx.measureText(text).width; this.widths.set(text, w); }
      const b = { id, x0: p.x + r + 3, y0: p.y - LABEL_H / 2, x1: p.x + r + 3 + w, y1: p.y + LABEL_H / 2 };
      if (b.x1 > width || b.y0 < 0 || b.y1 > height || hits(b)) continue;
      add(b);
      boxes.push(b);
    }
    ctx.fillStyle = this.labelColor;
    for (const b of boxes) ctx.fillText(this.graph.getNodeAttribute(b.id, "label") || b.id, b.x0, (b.y0 + b.y1) / 2);
    // Rings: pinned (thin), selected and focused (accent); badges of collapsed hub spokes.
    const accent = getComputedStyle(document.documentElement).getPropertyValue("--accent").trim() || "#2563eb";
    const ring = (id, width, color) => { const [x, y, r] = this.screenOf(id); rings.push([x, y, r + 2 + width, width, color]); };
    for (const [id, p] of this.pos) if (p.pinned && this.graph.hasNode(id)) ring(id, 1, this.labelColor);
    for (const id of [this.selectedNode, this.focus]) if (id && this.graph.hasNode(id)) ring(id, 2.5, accent);
    for (const [x, y, r, w, c] of rings) {
      if (!Number.isFinite(x)) continue;
      ctx.strokeStyle = c; ctx.lineWidth = w; ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.stroke();
    }
    if (this.vis) for (const [id, count] of this.vis.badges) {
      if (!this.graph.hasNode(id)) continue;
      const [x, y, r] = this.screenOf(id);
      ctx.fillStyle = accent; ctx.beginPath(); ctx.arc(x + r, y - r, 8, 0, 2 * Math.PI); ctx.fill();
      ctx.fillStyle = "#fff"; ctx.textAlign = "center"; ctx.font = "10px system-ui, sans-serif";
      ctx.fillText(count > 99 ? "99+" : String(count), x + r, y - r);
      ctx.textAlign = "start"; ctx.font = LABEL_FONT;
    }
    this.labels = boxes;
  }
  /** @param {string} id @returns {[number, number, number]} viewport x, y and radius */
  screenOf(id) {
    const d = this.sigma.getNodeDisplayData(id);
    if (!d) return [NaN, NaN, 0];
    const p = this.sigma.framedGraphToViewport(d);
    return [p.x, p.y, this.sigma.scaleSize(d.size)];
  }

  /** A PNG of what is on screen: the WebGL layers and the labels, composed. @returns {Promise<Blob | null>} */
  async png() {
    this.sigma.refresh();
    const { width, height } = this.sigma.getDimensions();
    const dpr = window.devicePixelRatio || 1;
    const out = document.createElement("canvas");
    out.width = width * dpr; out.height = height * dpr;
    const ctx = out.getContext("2d");
    if (!ctx) return null;
    ctx.fillStyle = getComputedStyle(document.documentElement).getPropertyValue("--bg").trim() || "#fff";
    ctx.fillRect(0, 0, out.width, out.height);
    for (const c of this.container.querySelectorAll("canvas")) ctx.drawImage(/** @type {HTMLCanvasElement} */ (c), 0, 0, out.width, out.height);
    return new Promise((r) => out.toBlob(r, "image/png"));
  }
}

/** @param {Map<string, Pos>} pos @param {string} id @param {{x: number, y: number}} a */
function copy1(pos, id, a) {
  const p = pos.get(id);
  if (p) { p.x = a.x; p.y = a.y; } else pos.set(id, { x: a.x, y: a.y, pinned: false });
}

/** A colour at a quarter strength (nodes and edges outside the focus). @param {string} c */
function fade(c) {
  return /^#[0-9a-f]{6}$/i.test(c) ? c + "30" : c;
}

/**
 * Exactly `iterations` ForceAtlas2 iterations of `g` in graphology's worker; `tick` every half
 * second with the iterations done.
 * @param {any} g @param {any} settings @param {number} iterations @param {() => boolean} current
 * @param {(i: number) => void} tick @returns {Promise<void>}
 */
function runFA2(g, settings, iterations, current, tick) {
  return new Promise((resolve, reject) => {
    const fa2 = new FA2Layout(g, { settings });
    let done = 0, last = performance.now();
    // A worker refused by a policy never answers.
    const watchdog = setTimeout(() => { if (done === 0) { fa2.kill(); reject(new Error("layout worker did not start")); } }, 4000);
    fa2.worker.addEventListener("error", () => { clearTimeout(watchdog); fa2.kill(); reject(new Error("layout worker failed")); });
    fa2.worker.addEventListener("message", () => {
      done++;
      if (!current()) { clearTimeout(watchdog); fa2.kill(); resolve(); return; }
      if (done >= iterations) { clearTimeout(watchdog); fa2.stop(); fa2.kill(); resolve(); return; }
      const now = performance.now();
      if (now - last > 500) { last = now; tick(done); }
    });
    fa2.start();
  });
}
