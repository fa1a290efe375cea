// @ts-check
// The map's data as the server sends it (DESIGN §5), kept by id, and the live deltas applied to
// it; then what is drawn: hidden protocols left out, namespaces folded into one node each,
// the spokes of hubs counted on a badge. Pure: no DOM, so `node --test` runs it.

/**
 * @typedef {{id: string, name: string, kind: string, namespace?: string, labels?: Record<string, string>,
 *   addresses?: string[], external?: boolean, requests_in?: number, requests_out?: number,
 *   folded?: number, group?: boolean, members?: number}} MapNode
 * @typedef {{source: string, target: string, protocol: string, requests: number, responses?: number,
 *   errors: number, bytes?: {request: number, response: number}, latency_us?: {p50: number, p90: number, p99: number},
 *   first_seen?: string, last_seen?: string, nodes?: string[]}} MapEdge
 * @typedef {{nodes: MapNode[], edges: MapEdge[], stats?: any}} MapJson
 * @typedef {{upsert: {nodes: MapNode[], edges: MapEdge[]}, remove?: {nodes?: string[], edges?: string[]}, stats?: any}} Delta
 * @typedef {{nodes: Map<string, MapNode>, edges: Map<string, MapEdge>, stats: any}} MapData
 * @typedef {{id: string, data: MapNode, members: string[]}} VisNode
 * @typedef {{key: string, source: string, target: string, protocol: string, requests: number, errors: number,
 *   members: MapEdge[], data: MapEdge}} VisEdge
 * @typedef {{nodes: VisNode[], edges: VisEdge[], byId: Map<string, VisNode>, owner: Map<string, string>,
 *   badges: Map<string, number>}} Visible
 * @typedef {{hidden: Set<string>, group: boolean, expanded: Set<string>, hubs: boolean, keep: Set<string>}} ViewOptions
 */

/** A hub has more than this many edges … */
export const HUB_DEGREE = 40;
/** … in a map of more than this many edges (small maps keep every spoke). */
export const HUB_MAP_EDGES = 300;

/** @param {{source: string, target: string, protocol: string}} e */
export const edgeKey = (e) => e.source + "|" + e.target + "|" + e.protocol;

/** @returns {MapData} */
export function emptyMap() {
  return { nodes: new Map(), edges: new Map(), stats: null };
}

/** @param {string} id @returns {MapNode} */
function placeholder(id) {
  return { id, name: id, kind: "ip", namespace: "", labels: {}, addresses: [], external: false, requests_in: 0, requests_out: 0 };
}

/**
 * Upserts nodes and edges; returns the ids of nodes that were not there before. An edge naming
 * a node nobody sent gets a placeholder node, so that it can be drawn.
 * @param {MapData} m @param {MapNode[]} nodes @param {MapEdge[]} edges @returns {string[]}
 */
function upsert(m, nodes, edges) {
  const added = [];
  for (const d of nodes) {
    if (!m.nodes.has(d.id)) added.push(d.id);
    m.nodes.set(d.id, d);
  }
  for (const e of edges) {
    m.edges.set(edgeKey(e), e);
    for (const id of [e.source, e.target]) if (!m.nodes.has(id)) { added.push(id); m.nodes.set(id, placeholder(id)); }
  }
  return added;
}

/**
 * Replaces everything with a full map (a snapshot or a historic answer).
 * @param {MapData} m @param {MapJson} map @returns {{added: string[], removed: string[]}}
 */
export function replaceAll(m, map) {
  const keep = new Set(map.nodes.map((n) => n.id));
  for (const e of map.edges) { keep.add(e.source); keep.add(e.target); }
  const removed = [...m.nodes.keys()].filter((id) => !keep.has(id));
  for (const id of removed) m.nodes.delete(id);
  m.edges.clear();
  const before = new Set(m.nodes.keys());
  upsert(m, map.nodes, map.edges);
  m.stats = map.stats || null;
  return { added: [...m.nodes.keys()].filter((id) => !before.has(id)), removed };
}

/**
 * Applies one live delta: removals first, then upserts.
 * @param {MapData} m @param {Delta} d @returns {{added: string[], removed: string[]}}
 */
export function applyDelta(m, d) {
  const removed = [];
  if (d.remove) {
    for (const id of d.remove.nodes || []) if (m.nodes.delete(id)) removed.push(id);
    for (const k of d.remove.edges || []) m.edges.delete(k);
    // An edge whose end went away cannot be drawn either.
    if (removed.length) for (const [k, e] of m.edges) if (!m.nodes.has(e.source) || !m.nodes.has(e.target)) m.edges.delete(k);
  }
  const added = upsert(m, d.upsert ? d.upsert.nodes || [] : [], d.upsert ? d.upsert.edges || [] : []);
  if (d.stats) m.stats = d.stats;
  return { added, removed };
}

/**
 * What is drawn for the options in force.
 * @param {MapData} m @param {ViewOptions} o @returns {Visible}
 */
export function visible(m, o) {
  /** @type {Map<string, VisNode>} */
  const byId = new Map();
  /** @type {Map<string, string>} map node id → drawn node id */
  const owner = new Map();
  for (const d of m.nodes.values()) {
    const ns = d.namespace;
    if (o.group && ns && d.kind !== "namespace" && !o.expanded.has(ns)) {
      const gid = "group:" + ns;
      let g = byId.get(gid);
      if (!g) {
        g = { id: gid, data: { id: gid, name: ns, kind: "namespace", namespace: ns, labels: {}, addresses: [], external: false, requests_in: 0, requests_out: 0, members: 0, group: true }, members: [] };
        byId.set(gid, g);
      }
      g.members.push(d.id);
      g.data.members = g.members.length;
      g.data.name = ns + " (" + g.members.length + ")";
      g.data.requests_in += d.requests_in || 0;
      g.data.requests_out += d.requests_out || 0;
      owner.set(d.id, gid);
    } else {
      byId.set(d.id, { id: d.id, data: d, members: [d.id] });
      owner.set(d.id, d.id);
    }
  }
  /** @type {Map<string, VisEdge>} */
  const merged = new Map();
  for (const e of m.edges.values()) {
    if (o.hidden.has(e.protocol)) continue;
    const a = owner.get(e.source), b = owner.get(e.target);
    if (!a || !b) continue;
    const key = a + "|" + b + "|" + e.protocol;
    const v = merged.get(key);
    if (v) { v.requests += e.requests; v.errors += e.errors; v.members.push(e); }
    else merged.set(key, { key, source: a, target: b, protocol: e.protocol, requests: e.requests, errors: e.errors, members: [e], data: e });
  }
  /** @type {Map<string, number>} */
  const degree = new Map();
  for (const v of merged.values()) for (const id of [v.source, v.target]) degree.set(id, (degree.get(id) || 0) + 1);
  // Hubs (a DNS server, the API server) are collapsed only in big maps, where their spokes
  // would cover everything else; a node the user is looking at keeps its edges.
  const hubMin = merged.size > HUB_MAP_EDGES ? Math.max(HUB_DEGREE, merged.size / 20) : Infinity;
  /** @type {Map<string, number>} */
  const badges = new Map();
  const edges = [];
  for (const v of merged.values()) {
    const hub = o.hubs ? [v.source, v.target].find((id) => (degree.get(id) || 0) > hubMin && !o.keep.has(id)) : undefined;
    if (hub) { badges.set(hub, (badges.get(hub) || 0) + 1); continue; }
    edges.push(v);
  }
  return { nodes: [...byId.values()], edges, byId, owner, badges };
}

/** The map as JSON again (exports). @param {MapData} m @param {string} level */
export function toJson(m, level) {
  return { version: 1, level, nodes: [...m.nodes.values()], edges: [...m.edges.values()], stats: m.stats || {} };
}
