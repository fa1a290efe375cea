// Renderer benchmark for the web UI (scripts/ui-bench): the same 2,000-node / 10,000-edge map
// as the UI's perf test, drawn in the headless Chromium the tests use, by each candidate:
//   canvas   the hand-written canvas renderer and force layout the UI had (from git)
//   sigma    sigma.js + graphology, ForceAtlas2 in a worker, noverlap
//   cytoscape  Cytoscape.js with fcose
// It prints, per candidate: time to first frame, layout settle time, frames per second while
// panning with a delta of 200 edges every 500 ms, and how many pairs of the labels it shows
// overlap. Figures, not a test: they depend on the machine.
import { chromium } from "playwright-core";
import { execFileSync } from "node:child_process";
import fs from "node:fs";
import http from "node:http";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";

const here = path.dirname(fileURLToPath(import.meta.url));
const root = path.resolve(here, "../..");
const ui = path.join(root, "crates/wiremap-server/ui");
const which = process.argv.slice(2).length ? process.argv.slice(2) : ["canvas", "sigma", "cytoscape"];
const OLD = process.env.OLD_UI_COMMIT || "1298f45"; // the last commit with the canvas renderer

const dir = fs.mkdtempSync(path.join(os.tmpdir(), "wiremap-bench-"));
// The data: the perf test's generator (mulberry32, seed 7).
const gen = `
function benchMap(N, E) {
  const protos = ["http", "grpc", "dns", "redis", "postgresql", "kafka", "tls", "tcp"];
  let seed = 7;
  const rnd = () => { seed = (seed + 0x6d2b79f5) | 0; let t = Math.imul(seed ^ (seed >>> 15), 1 | seed); t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t; return ((t ^ (t >>> 14)) >>> 0) / 4294967296; };
  const nodes = [], edges = new Map();
  for (let i = 0; i < N; i++) nodes.push({ id: "workload:ns" + (i % 40) + "/deployment/svc-" + i, name: "svc-" + i, kind: "workload", namespace: "ns" + (i % 40), labels: { app: "svc-" + i }, addresses: [], external: false, requests_in: 0, requests_out: 0 });
  while (edges.size < E) {
    const a = Math.floor(rnd() * N);
    const b = rnd() < 0.8 ? (a + 1 + Math.floor(rnd() * 20)) % N : Math.floor(rnd() * N);
    if (a === b) continue;
    const p = protos[Math.floor(rnd() * protos.length)];
    const e = { source: nodes[a].id, target: nodes[b].id, protocol: p, requests: 1 + Math.floor(rnd() * 1000), responses: 1, errors: 0, bytes: { request: 100, response: 1000 }, latency_us: { p50: 800, p90: 2000, p99: 9000 }, first_seen: "", last_seen: "" };
    edges.set(e.source + "|" + e.target + "|" + p, e);
  }
  return { nodes, edges: [...edges.values()], rnd };
}
// Pans for 6 s (a delta of 200 edges every 500 ms through applyDelta) and counts frames.
async function panFps(pan, applyDelta, map) {
  const timer = setInterval(() => {
    if (location.search.includes("nodelta")) return;
    const up = [];
    for (let i = 0; i < 200; i++) { const e = Object.assign({}, map.edges[Math.floor(map.rnd() * map.edges.length)]); e.requests += 10; up.push(e); }
    applyDelta(up);
  }, 500);
  const gaps = [];
  let last = 0;
  const t0 = performance.now();
  await new Promise((resolve) => {
    const step = (ts) => {
      if (last) gaps.push(ts - last);
      last = ts;
      const t = ts - t0;
      pan(Math.sin(t / 300) * 6, Math.cos(t / 400) * 4);
      if (t < 6000) requestAnimationFrame(step); else resolve();
    };
    requestAnimationFrame(step);
  });
  clearInterval(timer);
  gaps.sort((a, b) => a - b);
  return { fps: 1000 / (gaps.reduce((a, b) => a + b, 0) / gaps.length), gap_p95: gaps[Math.floor(gaps.length * 0.95)] };
}
// Pairs of overlapping boxes [x0, y0, x1, y1] (a grid keeps it near-linear).
function overlaps(boxes) {
  const cell = 64, grid = new Map();
  let n = 0;
  boxes.forEach((b, i) => {
    const seen = new Set();
    for (let gx = Math.floor(b[0] / cell); gx <= Math.floor(b[2] / cell); gx++) for (let gy = Math.floor(b[1] / cell); gy <= Math.floor(b[3] / cell); gy++) {
      const k = gx + "," + gy, list = grid.get(k) || [];
      for (const j of list) if (!seen.has(j)) { seen.add(j); const o = boxes[j]; if (b[0] < o[2] && o[0] < b[2] && b[1] < o[3] && o[1] < b[3]) n++; }
      list.push(i); grid.set(k, list);
    }
  });
  return n;
}
`;
fs.writeFileSync(path.join(dir, "gen.js"), gen);

// canvas: the old page, served as it was, fed the map through its test hooks.
const git = (p) => execFileSync("git", ["-C", root, "show", OLD + ":" + p], { encoding: "utf8" });
fs.mkdirSync(path.join(dir, "canvas"));
fs.writeFileSync(path.join(dir, "canvas/index.html"), git("crates/wiremap-server/ui/index.html").replace("<script src=\"format.js\">", "<script>window.WIREMAP_OFFLINE = {nodes: [], edges: [], stats: {}};</script><script src=\"format.js\">"));
for (const f of ["app.js", "format.js", "app.css"]) fs.writeFileSync(path.join(dir, "canvas", f), git("crates/wiremap-server/ui/" + f));
fs.writeFileSync(path.join(dir, "canvas/run.js"), `
async function run() {
  const map = benchMap(2000, 10000);
  const W = window.wiremap, S = W.state;
  S.hubs = false;
  const t0 = performance.now();
  W.replaceAll({ nodes: map.nodes, edges: map.edges, stats: {} });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const first = performance.now() - t0;
  W.fit();
  while (S.alpha > 0 && performance.now() - t0 < 180000) await new Promise((r) => setTimeout(r, 100));
  const settle = performance.now() - t0;
  W.fit();
  const pan = await panFps((dx, dy) => { S.view.tx += dx; S.view.ty += dy; }, (up) => W.applyDelta({ upsert: { nodes: [], edges: up } }), map);
  // The labels it draws: the 60 busiest when more than 150 nodes are shown and zoomed out.
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = "13px system-ui, sans-serif";
  const top = S.visible.nodes.length > 150 && S.view.k < 1.2 ? S.visible.nodes.slice().sort((a, b) => (b.data.requests_in + b.data.requests_out) - (a.data.requests_in + a.data.requests_out)).slice(0, 60) : S.visible.nodes;
  const boxes = top.map((n) => { const [x, y] = W.toScreen(n.x, n.y); const w = ctx.measureText(n.data.name).width; return [x + 8, y - 7, x + 8 + w, y + 7]; });
  return { first, settle, ...pan, labels: boxes.length, overlapping: overlaps(boxes) };
}`);
fs.appendFileSync(path.join(dir, "canvas/index.html"), "<script src=\"../gen.js\"></script><script src=\"run.js\"></script>");

// sigma: graphology + sigma from the vendored bundle; ForceAtlas2 in its worker.
fs.mkdirSync(path.join(dir, "sigma"));
fs.copyFileSync(path.join(ui, "vendor/graph.js"), path.join(dir, "sigma/graph.js"));
fs.writeFileSync(path.join(dir, "sigma/index.html"), `<!doctype html><style>html,body{margin:0;height:100%}#g{width:100%;height:100%}</style><div id=g></div>
<script src="../gen.js"></script><script type=module>
import { Graph, Sigma, FA2Layout, forceAtlas2, noverlap } from "./graph.js";
const COLORS = { http: "#1f77b4", grpc: "#17becf", dns: "#2ca02c", redis: "#d62728", postgresql: "#336791", kafka: "#8c564b", tls: "#ff7f0e", tcp: "#7f7f7f" };
window.run = async function () {
  const map = benchMap(2000, 10000);
  const t0 = performance.now();
  const g = new Graph({ multi: true });
  let h = 1;
  for (const n of map.nodes) { h = (h * 48271) % 2147483647; const a = h / 2147483647 * 6.283; h = (h * 48271) % 2147483647; const r = Math.sqrt(h / 2147483647) * 100; g.addNode(n.id, { x: Math.cos(a) * r, y: Math.sin(a) * r, size: 4, label: n.name, color: "#4f7cff" }); }
  for (const e of map.edges) g.addEdgeWithKey(e.source + "|" + e.target + "|" + e.protocol, e.source, e.target, { size: 1 + Math.log10(e.requests), color: COLORS[e.protocol], });
  const opt = new URLSearchParams(location.search);
  const sigma = new Sigma(g, document.getElementById("g"), { labelRenderedSizeThreshold: 0, hideEdgesOnMove: opt.has("hide"), defaultEdgeType: opt.get("edge") || "arrow" });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const first = performance.now() - t0;
  const settings = Object.assign(forceAtlas2.inferSettings(g), { barnesHutOptimize: true });
  // The worker's graph is a copy: the drawn one takes the positions once, when done.
  const lg = g.copy();
  const fa2 = new FA2Layout(lg, { settings });
  let iters = 0;
  const ITER = 300;
  await new Promise((resolve) => {
    fa2.worker.addEventListener("message", () => { if (++iters >= ITER) { fa2.stop(); resolve(); } });
    fa2.start();
  });
  fa2.kill();
  lg.forEachNode((n, a) => g.mergeNodeAttributes(n, { x: a.x, y: a.y }));
  noverlap.assign(g, { maxIterations: 50, settings: { ratio: 1.2, margin: 2 } });
  sigma.refresh();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const settle = performance.now() - t0;
  const cam = sigma.getCamera();
  const pan = await panFps((dx, dy) => { const s = cam.getState(); cam.setState({ x: s.x + dx / 2000, y: s.y + dy / 2000 }); },
    (up) => { for (const e of up) g.setEdgeAttribute(e.source + "|" + e.target + "|" + e.protocol, "size", 1 + Math.log10(e.requests)); }, map);
  // The labels sigma's grid shows (its default 14px label font).
  const ctx = document.createElement("canvas").getContext("2d");
  ctx.font = "14px Arial";
  const boxes = [...sigma.getNodeDisplayedLabels()].map((n) => { const d = sigma.getNodeDisplayData(n); const p = sigma.framedGraphToViewport(d); const s = sigma.scaleSize(d.size); const w = ctx.measureText(g.getNodeAttribute(n, "label")).width; return [p.x + s + 3, p.y - 7, p.x + s + 3 + w, p.y + 7]; });
  return { first, settle, ...pan, labels: boxes.length, overlapping: overlaps(boxes), iterations: ITER };
};
</script>`);

// cytoscape: Cytoscape.js with fcose, bundled here for the benchmark only.
fs.mkdirSync(path.join(dir, "cytoscape"));
execFileSync(path.join(here, "node_modules/.bin/esbuild"), ["--bundle", "--minify", "--log-level=warning", "--outfile=" + path.join(dir, "cytoscape/cy.js")],
  { cwd: here, input: `import cytoscape from "cytoscape"; import fcose from "cytoscape-fcose"; cytoscape.use(fcose); window.cytoscape = cytoscape;` });
fs.writeFileSync(path.join(dir, "cytoscape/index.html"), `<!doctype html><style>html,body{margin:0;height:100%}#g{width:100%;height:100%}</style><div id=g></div>
<script src="cy.js"></script><script src="../gen.js"></script><script>
const COLORS = { http: "#1f77b4", grpc: "#17becf", dns: "#2ca02c", redis: "#d62728", postgresql: "#336791", kafka: "#8c564b", tls: "#ff7f0e", tcp: "#7f7f7f" };
window.run = async function () {
  const map = benchMap(2000, 10000);
  const t0 = performance.now();
  const els = map.nodes.map((n) => ({ data: { id: n.id, label: n.name } })).concat(map.edges.map((e) => ({ data: { id: e.source + "|" + e.target + "|" + e.protocol, source: e.source, target: e.target, w: 1 + Math.log10(e.requests), c: COLORS[e.protocol] } })));
  const cy = cytoscape({ container: document.getElementById("g"), elements: els, style: [
    { selector: "node", style: { label: "data(label)", width: 8, height: 8, "font-size": 12 } },
    { selector: "edge", style: { width: "data(w)", "line-color": "data(c)", "target-arrow-shape": "triangle", "target-arrow-color": "data(c)", "curve-style": "haystack" } }],
    layout: { name: "preset" } });
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const first = performance.now() - t0;
  await new Promise((resolve) => { const l = cy.layout({ name: "fcose", randomize: true, animate: false, quality: "default", randomSeed: 1 }); l.one("layoutstop", resolve); l.run(); });
  cy.fit();
  await new Promise((r) => requestAnimationFrame(() => requestAnimationFrame(r)));
  const settle = performance.now() - t0;
  const pan = await panFps((dx, dy) => cy.panBy({ x: dx, y: dy }), (up) => cy.batch(() => { for (const e of up) cy.getElementById(e.source + "|" + e.target + "|" + e.protocol).data("w", 1 + Math.log10(e.requests)); }), map);
  // Cytoscape draws every label above its minimum zoomed font size.
  const boxes = cy.nodes().map((n) => { const b = n.renderedBoundingBox({ includeNodes: false, includeEdges: false, includeLabels: true }); return [b.x1, b.y1, b.x2, b.y2]; }).filter((b) => b[2] > 0 && b[0] < innerWidth && b[3] > 0 && b[1] < innerHeight && b[2] > b[0]);
  return { first, settle, ...pan, labels: boxes.length, overlapping: overlaps(boxes) };
};
</script>`);

const server = http.createServer((req, res) => {
  const p = path.join(dir, decodeURIComponent(new URL(req.url, "http://x").pathname));
  if (!p.startsWith(dir) || !fs.existsSync(p) || fs.statSync(p).isDirectory()) { res.writeHead(404); res.end(); return; }
  res.writeHead(200, { "content-type": p.endsWith(".html") ? "text/html" : p.endsWith(".css") ? "text/css" : "text/javascript" });
  res.end(fs.readFileSync(p));
});
await new Promise((r) => server.listen(0, "127.0.0.1", r));
const base = "http://127.0.0.1:" + server.address().port;
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--disable-dev-shm-usage"],
});
for (const name of which) {
  const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
  page.on("pageerror", (e) => console.log(name + ": page error: " + e));
  const [dirName, query] = name.split("?");
  await page.goto(base + "/" + dirName + "/index.html" + (query ? "?" + query : ""));
  await page.waitForFunction(() => typeof window.run === "function", null, { timeout: 20000 });
  const r = await page.evaluate(() => run());
  console.log(`${name.padEnd(10)} first frame ${(r.first / 1000).toFixed(2)} s, settled ${(r.settle / 1000).toFixed(1)} s, panning ${r.fps.toFixed(1)} fps (frame gap p95 ${r.gap_p95.toFixed(0)} ms), ${r.overlapping} overlapping pairs among ${r.labels} labels`);
  await page.close();
}
await browser.close();
server.close();
fs.rmSync(dir, { recursive: true, force: true });
