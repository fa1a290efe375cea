// @ts-check
// Where nodes go, repeatably: a starting place that depends on nothing but the node's id (so the
// same map always starts, and after a fixed number of ForceAtlas2 iterations ends, the same
// way), a place next to the neighbours for nodes that arrive later, and the positions and pins
// the user ended with, saved per level and filter in the browser and as JSON. Pure: no DOM.

/** @typedef {{x: number, y: number, pinned: boolean}} Pos */
/** @typedef {Pick<Storage, "getItem" | "setItem" | "removeItem">} KV */

/** Version tag of the saved and exported layout JSON. */
export const LAYOUT_FORMAT = "wiremap-layout/1";
/** How many layouts (level × filter) the browser keeps; the least recently used go first. */
export const MAX_LAYOUTS = 40;
/** Nodes per saved layout: past this a layout is not saved (it would not fit the storage). */
export const MAX_LAYOUT_NODES = 20000;
const PREFIX = "wiremap.layout.";
const INDEX = "wiremap.layouts";

/** FNV-1a, 32 bits. @param {string} s @param {number} [seed] */
export function hash32(s, seed = 0) {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < s.length; i++) { h ^= s.charCodeAt(i); h = Math.imul(h, 0x01000193) >>> 0; }
  return h >>> 0;
}

/**
 * The starting place of a node: a point in a disc whose area grows with the node count,
 * chosen by the id's hash alone.
 * @param {string} id @param {number} count @param {number} [seed] @returns {{x: number, y: number}}
 */
export function seedPosition(id, count, seed = 1) {
  const a = (hash32(id, seed) / 4294967296) * 2 * Math.PI;
  const r = Math.sqrt(hash32(id, seed + 1) / 4294967296) * 10 * Math.sqrt(Math.max(1, count));
  return { x: Math.cos(a) * r, y: Math.sin(a) * r };
}

/**
 * A place for a node that arrives after the layout: the middle of its placed neighbours, a
 * little off it (by the id's hash, so two newcomers with the same neighbours do not stack);
 * with no placed neighbour, its seed position.
 * @param {string} id @param {{x: number, y: number}[]} neighbours @param {number} count @param {number} spread
 */
export function placeNear(id, neighbours, count, spread) {
  if (!neighbours.length) return seedPosition(id, count);
  let x = 0, y = 0;
  for (const p of neighbours) { x += p.x; y += p.y; }
  const a = (hash32(id, 7) / 4294967296) * 2 * Math.PI;
  return { x: x / neighbours.length + Math.cos(a) * spread, y: y / neighbours.length + Math.sin(a) * spread };
}

/** Which saved layout a view uses. @param {string} level @param {string} q @param {boolean} group */
export function layoutKey(level, q, group) {
  return level + "|" + (group ? "grouped" : "flat") + "|" + q;
}

/** @param {Map<string, Pos>} pos */
export function toLayoutJson(key, pos) {
  /** @type {Record<string, [number, number] | [number, number, 1]>} */
  const nodes = {};
  for (const [id, p] of pos) nodes[id] = p.pinned ? [round(p.x), round(p.y), 1] : [round(p.x), round(p.y)];
  return { format: LAYOUT_FORMAT, key, nodes };
}
/** @param {number} v */
const round = (v) => Math.round(v * 100) / 100;

/**
 * Reads layout JSON (saved or imported); anything malformed is an error, never a partial map.
 * @param {string} text @returns {{key: string, pos: Map<string, Pos>}}
 */
export function parseLayoutJson(text) {
  /** @type {any} */
  let j;
  try { j = JSON.parse(text); } catch (e) { throw new Error("not JSON: " + /** @type {Error} */ (e).message); }
  if (!j || typeof j !== "object" || j.format !== LAYOUT_FORMAT) throw new Error("not a wiremap layout (format " + LAYOUT_FORMAT + ")");
  if (typeof j.key !== "string" || !j.nodes || typeof j.nodes !== "object" || Array.isArray(j.nodes)) throw new Error("a layout needs a key and nodes");
  const ids = Object.keys(j.nodes);
  if (ids.length > MAX_LAYOUT_NODES) throw new Error("too many nodes in the layout (" + ids.length + ")");
  /** @type {Map<string, Pos>} */
  const pos = new Map();
  for (const id of ids) {
    const v = j.nodes[id];
    if (!Array.isArray(v) || v.length < 2 || !Number.isFinite(v[0]) || !Number.isFinite(v[1])) throw new Error("bad position for " + JSON.stringify(id).slice(0, 80));
    pos.set(id, { x: v[0], y: v[1], pinned: v[2] === 1 });
  }
  return { key: j.key, pos };
}

/** Saved layouts in a key-value storage (localStorage in the page). */
export class LayoutStore {
  /** @param {KV | null} kv */
  constructor(kv) { this.kv = kv; }
  /** @returns {string[]} most recently used last */
  index() {
    try { const v = JSON.parse((this.kv && this.kv.getItem(INDEX)) || "[]"); return Array.isArray(v) ? v.filter((k) => typeof k === "string") : []; } catch { return []; }
  }
  /** @param {string} key @returns {Map<string, Pos> | null} */
  load(key) {
    if (!this.kv) return null;
    const text = this.kv.getItem(PREFIX + key);
    if (!text) return null;
    try { return parseLayoutJson(text).pos; } catch { this.kv.removeItem(PREFIX + key); return null; }
  }
  /** @param {string} key @param {Map<string, Pos>} pos @returns {boolean} saved */
  save(key, pos) {
    if (!this.kv || pos.size > MAX_LAYOUT_NODES) return false;
    const keys = this.index().filter((k) => k !== key);
    keys.push(key);
    while (keys.length > MAX_LAYOUTS) { const old = keys.shift(); if (old !== undefined) this.kv.removeItem(PREFIX + old); }
    const text = JSON.stringify(toLayoutJson(key, pos));
    for (;;) {
      try { this.kv.setItem(PREFIX + key, text); this.kv.setItem(INDEX, JSON.stringify(keys)); return true; }
      catch {
        // Storage full: drop the oldest other layout and try again.
        const old = keys.length > 1 ? keys.shift() : undefined;
        if (old === undefined) return false;
        this.kv.removeItem(PREFIX + old);
      }
    }
  }
  /** @param {string} key */
  forget(key) {
    if (!this.kv) return;
    this.kv.removeItem(PREFIX + key);
    this.kv.setItem(INDEX, JSON.stringify(this.index().filter((k) => k !== key)));
  }
}
