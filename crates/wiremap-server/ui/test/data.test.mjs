// Unit tests of the map data and the live deltas (node --test).
import test from "node:test";
import assert from "node:assert/strict";
import { emptyMap, replaceAll, applyDelta, visible, edgeKey, HUB_DEGREE } from "../data.js";

const node = (id, ns = "") => ({ id, name: id, kind: "workload", namespace: ns, labels: {}, addresses: [], external: false, requests_in: 1, requests_out: 2 });
const edge = (s, t, p = "http", requests = 1) => ({ source: s, target: t, protocol: p, requests, errors: 0 });
const opts = (o = {}) => ({ hidden: new Set(), group: false, expanded: new Set(), hubs: true, keep: new Set(), ...o });

test("a snapshot replaces everything and says what came and went", () => {
  const m = emptyMap();
  let r = replaceAll(m, { nodes: [node("a"), node("b")], edges: [edge("a", "b")] });
  assert.deepEqual(r.added.sort(), ["a", "b"]);
  r = replaceAll(m, { nodes: [node("b"), node("c")], edges: [edge("b", "c")], stats: { entries: 3 } });
  assert.deepEqual(r, { added: ["c"], removed: ["a"] });
  assert.deepEqual([...m.edges.keys()], ["b|c|http"]);
  assert.equal(m.stats.entries, 3);
});

test("deltas upsert, remove, and never leave an edge without its ends", () => {
  const m = emptyMap();
  replaceAll(m, { nodes: [node("a"), node("b"), node("c")], edges: [edge("a", "b"), edge("b", "c", "dns")] });
  let r = applyDelta(m, { upsert: { nodes: [], edges: [edge("a", "b", "http", 9)] } });
  assert.deepEqual(r, { added: [], removed: [] });
  assert.equal(m.edges.get("a|b|http").requests, 9);
  r = applyDelta(m, { upsert: { nodes: [], edges: [] }, remove: { nodes: ["c"], edges: [] } });
  assert.deepEqual(r.removed, ["c"]);
  assert.equal(m.edges.has("b|c|dns"), false, "edge of a removed node dropped");
  // An edge to a node nobody sent gets a placeholder, so that it can be drawn.
  r = applyDelta(m, { upsert: { nodes: [], edges: [edge("a", "ip:10.0.0.9")] } });
  assert.deepEqual(r.added, ["ip:10.0.0.9"]);
  assert.equal(m.nodes.get("ip:10.0.0.9").kind, "ip");
  r = applyDelta(m, { upsert: { nodes: [node("d")], edges: [] }, remove: { edges: ["a|b|http"] }, stats: { entries: 1 } });
  assert.deepEqual(r.added, ["d"]);
  assert.equal(m.edges.has("a|b|http"), false);
  assert.equal(m.stats.entries, 1);
});

test("a sequence of deltas ends where the final snapshot is", () => {
  // Oracle: the last snapshot of a random history, against its deltas applied in turn.
  let seed = 3;
  const rnd = (n) => { seed = (seed * 48271) % 2147483647; return seed % n; };
  const ids = Array.from({ length: 12 }, (_, i) => "n" + i);
  const live = emptyMap();
  let truth = { nodes: new Map(), edges: new Map() };
  for (let step = 0; step < 200; step++) {
    const d = { upsert: { nodes: [], edges: [] }, remove: { nodes: [], edges: [] } };
    const a = ids[rnd(12)], b = ids[rnd(12)];
    if (rnd(4) === 0 && truth.nodes.has(a)) {
      d.remove.nodes.push(a);
      truth.nodes.delete(a);
      for (const [k, e] of truth.edges) if (e.source === a || e.target === a) truth.edges.delete(k);
    } else {
      const e = edge(a, b, ["http", "dns"][rnd(2)], 1 + rnd(50));
      for (const id of [a, b]) if (!truth.nodes.has(id)) { truth.nodes.set(id, node(id)); d.upsert.nodes.push(node(id)); }
      truth.edges.set(edgeKey(e), e);
      d.upsert.edges.push(e);
    }
    applyDelta(live, d);
  }
  assert.deepEqual([...live.nodes.keys()].sort(), [...truth.nodes.keys()].sort());
  assert.deepEqual([...live.edges.entries()].sort(), [...truth.edges.entries()].sort());
});

test("hidden protocols, namespace groups and their expansion", () => {
  const m = emptyMap();
  replaceAll(m, { nodes: [node("a", "x"), node("b", "x"), node("c", "y")], edges: [edge("a", "c", "http", 2), edge("b", "c", "http", 3), edge("a", "b", "dns")] });
  let v = visible(m, opts({ hidden: new Set(["dns"]) }));
  assert.deepEqual(v.edges.map((e) => e.key).sort(), ["a|c|http", "b|c|http"]);
  v = visible(m, opts({ group: true }));
  assert.deepEqual(v.nodes.map((n) => n.id).sort(), ["group:x", "group:y"]);
  const merged = v.edges.find((e) => e.key === "group:x|group:y|http");
  assert.equal(merged.requests, 5, "requests of folded edges summed");
  assert.equal(v.byId.get("group:x").data.members, 2);
  assert.equal(v.owner.get("a"), "group:x");
  v = visible(m, opts({ group: true, expanded: new Set(["x"]) }));
  assert.deepEqual(v.nodes.map((n) => n.id).sort(), ["a", "b", "group:y"]);
});

test("hub spokes fold into a badge only in big maps, and not for a kept node", () => {
  const m = emptyMap();
  const n = HUB_DEGREE * 10;
  const nodes = [node("hub")], edges = [];
  for (let i = 0; i < n; i++) { nodes.push(node("s" + i)); edges.push(edge("s" + i, "hub", "dns")); }
  replaceAll(m, { nodes, edges });
  let v = visible(m, opts());
  assert.equal(v.edges.length, 0);
  assert.equal(v.badges.get("hub"), n);
  v = visible(m, opts({ keep: new Set(["hub"]) }));
  assert.equal(v.edges.length, n);
  v = visible(m, opts({ hubs: false }));
  assert.equal(v.edges.length, n);
  replaceAll(m, { nodes: nodes.slice(0, 11), edges: edges.slice(0, 10) });
  assert.equal(visible(m, opts()).edges.length, 10, "a small map keeps every spoke");
});
