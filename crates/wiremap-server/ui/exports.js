// @ts-check
// Exports of what is on screen: the map as JSON or DOT, the drawing as SVG or PNG, and the
// layout (positions and pins) as JSON to import elsewhere.
import { PROTO_COLORS, label, download, toDot, svgOf } from "./format.js";
import { toJson } from "./data.js";
import { toLayoutJson } from "./layout.js";

/** @typedef {import("./render.js").MapView} MapView */
/** @typedef {import("./data.js").MapData} MapData */

/**
 * The drawing as SVG at the fitted view's scale, so labels read at 100 %.
 * @param {MapView} view
 */
export function svgOfView(view) {
  const s = view.sigma;
  const fitted = { cameraState: { x: 0.5, y: 0.5, ratio: 1, angle: 0 } };
  /** @type {Map<string, {x: number, y: number, r: number}>} */
  const at = new Map();
  const nodes = [];
  view.graph.forEachNode((id, a) => {
    const p = s.graphToViewport({ x: a.x, y: a.y }, fitted);
    const r = a.size;
    at.set(id, { x: p.x, y: p.y, r });
    const v = view.vis && view.vis.byId.get(id);
    nodes.push({ x: p.x, y: p.y, r, color: a.color, label: a.label || id, external: !!(v && v.data.external) });
  });
  const edges = [];
  if (view.vis) for (const e of view.vis.edges) {
    const a = at.get(e.source), b = at.get(e.target);
    if (!a || !b || !view.graph.hasEdge(e.key)) continue;
    const ea = view.graph.getEdgeAttributes(e.key);
    const na = view.vis.byId.get(e.source), nb = view.vis.byId.get(e.target);
    edges.push({ x1: a.x, y1: a.y, x2: b.x, y2: b.y, r2: b.r, color: PROTO_COLORS[e.protocol] || "#888888", width: ea.size, protocol: e.protocol,
      title: (na ? label(na.data) : e.source) + " → " + (nb ? label(nb.data) : e.target) + " " + e.protocol + " " + e.requests });
  }
  return svgOf(nodes, edges);
}

/**
 * @param {string} format json | dot | svg | png | layout
 * @param {{map: MapData, level: string, view: MapView, layoutKey: string}} what
 */
export async function exportAs(format, what) {
  const m = toJson(what.map, what.level);
  if (format === "json") download("wiremap-map.json", new Blob([JSON.stringify(m, null, 2)], { type: "application/json" }));
  else if (format === "dot") download("wiremap-map.dot", new Blob([toDot(m)], { type: "text/vnd.graphviz" }));
  else if (format === "svg") download("wiremap-map.svg", new Blob([svgOfView(what.view)], { type: "image/svg+xml" }));
  else if (format === "png") { const b = await what.view.png(); if (b) download("wiremap-map.png", b); }
  else if (format === "layout") download("wiremap-layout.json", new Blob([JSON.stringify(toLayoutJson(what.layoutKey, what.view.pos))], { type: "application/json" }));
}
