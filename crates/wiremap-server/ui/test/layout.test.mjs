// Unit tests of layout seeding and persistence (node --test).
import test from "node:test";
import assert from "node:assert/strict";
import { hash32, seedPosition, placeNear, layoutKey, LayoutStore, toLayoutJson, parseLayoutJson, MAX_LAYOUTS, LAYOUT_FORMAT } from "../layout.js";

/** A Storage with a quota, like a browser's. */
class FakeStorage {
  constructor(quota = Infinity) { this.m = new Map(); this.quota = quota; }
  getItem(k) { return this.m.has(k) ? this.m.get(k) : null; }
  setItem(k, v) {
    const used = [...this.m].reduce((a, [kk, vv]) => a + (kk === k ? 0 : kk.length + vv.length), 0);
    if (used + k.length + v.length > this.quota) throw new Error("QuotaExceededError");
    this.m.set(k, String(v));
  }
  removeItem(k) { this.m.delete(k); }
}

test("seed positions depend on the id alone", () => {
  assert.deepEqual(seedPosition("workload:a/b", 100), seedPosition("workload:a/b", 100));
  assert.notDeepEqual(seedPosition("workload:a/b", 100), seedPosition("workload:a/c", 100));
  // FNV-1a test vectors.
  assert.equal(hash32(""), 0x811c9dc5);
  assert.equal(hash32("a"), 0xe40c292c);
  const r = 10 * Math.sqrt(400);
  for (let i = 0; i < 400; i++) { const p = seedPosition("n" + i, 400); assert.ok(Math.hypot(p.x, p.y) <= r + 1e-9); }
});

test("a newcomer lands next to its neighbours", () => {
  const p = placeNear("new", [{ x: 100, y: 100 }, { x: 120, y: 80 }], 10, 5);
  assert.ok(Math.abs(Math.hypot(p.x - 110, p.y - 90) - 5) < 1e-9, "at `spread` from the neighbours' middle");
  assert.deepEqual(placeNear("new", [], 10, 5), seedPosition("new", 10));
});

test("saved layouts come back as saved, per level, grouping and filter", () => {
  const s = new LayoutStore(new FakeStorage());
  const pos = new Map([["a", { x: 1.25, y: -3, pinned: true }], ["b", { x: 4, y: 5.5, pinned: false }]]);
  const k1 = layoutKey("workload", "!dns", false), k2 = layoutKey("workload", "", false);
  assert.notEqual(k1, k2);
  assert.notEqual(layoutKey("pod", "", false), k2);
  assert.notEqual(layoutKey("workload", "", true), k2);
  assert.ok(s.save(k1, pos));
  assert.deepEqual(s.load(k1), pos);
  assert.equal(s.load(k2), null);
  s.forget(k1);
  assert.equal(s.load(k1), null);
});

test("the store keeps the most recently used layouts and survives a full storage", () => {
  const s = new LayoutStore(new FakeStorage());
  const one = new Map([["a", { x: 1, y: 2, pinned: false }]]);
  for (let i = 0; i < MAX_LAYOUTS + 5; i++) s.save("k" + i, one);
  assert.equal(s.index().length, MAX_LAYOUTS);
  assert.equal(s.load("k0"), null);
  assert.deepEqual(s.load("k" + (MAX_LAYOUTS + 4)), one);
  // A storage with room for about two layouts: older ones make way for the new one.
  const small = new LayoutStore(new FakeStorage(400));
  const big = new Map(Array.from({ length: 5 }, (_, i) => ["node-" + i, { x: i, y: i, pinned: false }]));
  for (let i = 0; i < 5; i++) assert.ok(small.save("s" + i, big), "saved " + i);
  assert.deepEqual(small.load("s4"), big);
  assert.equal(small.load("s0"), null);
});

test("layout JSON round-trips and rejects what is not one", () => {
  const pos = new Map([["a", { x: 1.234, y: 2, pinned: true }], ["b", { x: -4, y: 5, pinned: false }]]);
  const j = toLayoutJson("pod||", pos);
  assert.equal(j.format, LAYOUT_FORMAT);
  const back = parseLayoutJson(JSON.stringify(j));
  assert.equal(back.key, "pod||");
  assert.deepEqual(back.pos, new Map([["a", { x: 1.23, y: 2, pinned: true }], ["b", { x: -4, y: 5, pinned: false }]]));
  for (const bad of ["nope", "{}", "[]", JSON.stringify({ format: LAYOUT_FORMAT, key: "k", nodes: { a: [1] } }),
    JSON.stringify({ format: LAYOUT_FORMAT, key: "k", nodes: { a: ["1", 2] } }), JSON.stringify({ format: LAYOUT_FORMAT, key: 3, nodes: {} }),
    JSON.stringify({ format: LAYOUT_FORMAT, key: "k", nodes: [] })]) {
    assert.throws(() => parseLayoutJson(bad), /./, bad);
  }
  // A corrupt saved layout is dropped, not half-used.
  const st = new FakeStorage();
  st.setItem("wiremap.layout.k", "{broken");
  assert.equal(new LayoutStore(st).load("k"), null);
  assert.equal(st.getItem("wiremap.layout.k"), null);
});
