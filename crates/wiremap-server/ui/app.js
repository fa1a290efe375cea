// wiremap's service map: a canvas renderer with an incremental force layout, fed by
// /api/map (historic windows) or the /api/stream WebSocket (live). No dependencies and no
// requests to anything but the server that served this page.
"use strict";

(function () {
  const { PROTO_COLORS, KIND_COLORS, fmtN, fmtUs, fmtB, esc, edgeKey, label, statsRows, summary, entryDetail, download, toDot, svgOf } = window.wiremapFormat;
  const OFFLINE = window.WIREMAP_OFFLINE || null; // a map embedded by `wiremap map --format html`
  const HUB_DEGREE = 40;
  const HUB_MAP_EDGES = 300;
  const DENSE_EDGES = 2500;
  const DENSE_ARROWS = 300;
  const $ = (s) => document.querySelector(s);
  const canvas = $("#graph");
  const ctx = canvas.getContext("2d");

  const params = new URLSearchParams(location.hash.slice(1) || location.search.slice(1));
  const token = new URLSearchParams(location.search).get("token") || "";

  // ---- state ----
  const S = {
    nodes: new Map(), // id -> {data, x, y, vx, vy, pinned}
    edges: new Map(), // key -> data
    level: params.get("level") || "workload",
    q: params.get("q") || "",
    win: params.get("window") || "live",
    from: params.get("from") || "",
    to: params.get("to") || "",
    paused: false,
    buffered: [],
    frozen: false,
    group: false,
    expanded: new Set(),
    hubs: true,
    hidden: new Set(),
    focus: null,
    selected: null,
    seq: 0,
    deltas: 0,
    error: "",
    stats: null,
    view: { k: 1, tx: 0, ty: 0 },
    alpha: 0,
    dirty: true,
    visible: { nodes: [], edges: [], badges: new Map() },
    frames: [],
    ws: null,
    loading: false,
    groupNodes: new Map(),
    cost: { rebuild: [], tick: [] },
  };

  // ---- helpers ----
  const api = (path, extra) => {
    const u = new URL(path, location.href);
    if (extra) for (const [k, v] of Object.entries(extra)) if (v !== "" && v != null) u.searchParams.set(k, v);
    if (token) u.searchParams.set("token", token);
    return u;
  };
  const windowParams = () => {
    if (S.win === "live") return { from: "-15m" };
    if (S.win === "custom") return { from: S.from, to: S.to };
    return { from: "-" + S.win };
  };
  const nsColor = (ns) => {
    let h = 0;
    for (const c of ns) h = (h * 31 + c.charCodeAt(0)) >>> 0;
    return "hsl(" + (h % 360) + ",55%,55%)";
  };
  const nodeColor = (d) => (d.namespace && d.kind !== "namespace" && S.colorByNs ? nsColor(d.namespace) : KIND_COLORS[d.kind] || "#999");

  function saveUrl() {
    const p = new URLSearchParams();
    if (S.q) p.set("q", S.q);
    p.set("level", S.level);
    p.set("window", S.win);
    if (S.win === "custom") { p.set("from", S.from); p.set("to", S.to); }
    history.replaceState(null, "", location.pathname + location.search + "#" + p.toString());
  }

  // ---- data ----
  function place(id, data) {
    // New nodes start next to a neighbour that already has a place.
    for (const e of S.edges.values()) {
      const other = e.source === id ? e.target : e.target === id ? e.source : null;
      const o = other && S.nodes.get(other);
      if (o && o.x !== undefined) return { x: o.x + (Math.random() - 0.5) * 60, y: o.y + (Math.random() - 0.5) * 60 };
    }
    const r = 40 + Math.sqrt(S.nodes.size + 1) * 25;
    const a = Math.random() * Math.PI * 2;
    return { x: Math.cos(a) * r * Math.random(), y: Math.sin(a) * r * Math.random() };
  }
  function upsert(nodes, edges) {
    for (const e of edges) S.edges.set(edgeKey(e), e);
    let added = 0;
    for (const d of nodes) {
      const n = S.nodes.get(d.id);
      if (n) n.data = d;
      else { added++; S.nodes.set(d.id, Object.assign({ data: d, vx: 0, vy: 0, pinned: false }, place(d.id, d))); }
    }
    // Edges can name nodes a delta did not carry (not expected, but keep them drawable).
    for (const e of edges) for (const id of [e.source, e.target]) if (!S.nodes.has(id)) {
      added++;
      S.nodes.set(id, Object.assign({ data: { id, name: id, kind: "ip", namespace: "", labels: {}, addresses: [], external: false, requests_in: 0, requests_out: 0 }, vx: 0, vy: 0, pinned: false }, place(id)));
    }
    S.dirty = true;
    // Only new nodes move the layout; updated counters leave everything where it is.
    if (added) S.alpha = Math.max(S.alpha, 0.3);
  }
  function replaceAll(map) {
    const keep = new Set(map.nodes.map((n) => n.id));
    for (const id of [...S.nodes.keys()]) if (!keep.has(id)) S.nodes.delete(id);
    S.edges.clear();
    upsert(map.nodes, map.edges);
    S.stats = map.stats;
    S.alpha = 1;
    refreshNames();
  }
  function applyDelta(m) {
    if (m.remove) {
      for (const id of m.remove.nodes || []) S.nodes.delete(id);
      for (const k of m.remove.edges || []) S.edges.delete(k);
    }
    upsert(m.upsert.nodes, m.upsert.edges);
    if (m.stats) S.stats = m.stats;
    if (m.upsert.nodes.length) refreshNames();
  }
  function refreshNames() {
    const dl = $("#nodenames");
    const names = [...S.nodes.values()].map((n) => label(n.data)).sort().slice(0, 3000);
    dl.innerHTML = names.map((n) => "<option value=\"" + esc(n) + "\">").join("");
  }

  function closeStream() {
    if (S.ws) { S.ws.onclose = null; S.ws.close(); S.ws = null; }
  }
  function setStatus() {
    const s = S.stats;
    const parts = [];
    parts.push(S.nodes.size + " nodes, " + S.edges.size + " edges");
    if (OFFLINE) parts.push("offline copy");
    else if (S.win === "live") parts.push(S.paused ? "paused" : "live, seq " + S.seq);
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
    if (OFFLINE) { replaceAll(OFFLINE); setStatus(); return; }
    S.loading = true;
    if (S.win === "live") {
      const u = api("/api/stream", Object.assign({ level: S.level, q: S.q }, windowParams()));
      u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
      const ws = new WebSocket(u);
      S.ws = ws;
      ws.onmessage = (ev) => {
        const m = JSON.parse(ev.data);
        if (m.type === "snapshot") { S.seq = m.seq; replaceAll(m.map); S.loading = false; }
        else if (m.type === "delta") {
          if (m.seq !== S.seq + 1) { ws.send(JSON.stringify({ type: "snapshot" })); return; }
          S.seq = m.seq;
          S.deltas++;
          if (S.paused) S.buffered.push(m); else applyDelta(m);
        }
        setStatus();
      };
      ws.onclose = () => { if (S.ws === ws) { S.error = "stream closed; retrying"; setStatus(); setTimeout(() => { if (S.ws === ws) load(); }, 2000); } };
    } else {
      try {
        const r = await fetch(api("/api/map", Object.assign({ level: S.level, q: S.q }, windowParams())));
        const body = await r.json();
        if (!r.ok) throw new Error(body.error || r.statusText);
        replaceAll(body);
      } catch (e) { S.error = e.message; }
      S.loading = false;
      setStatus();
    }
  }

  // ---- what is drawn: protocol toggles, namespace groups, hubs ----
  function groupOf(d) {
    if (!S.group || !d.namespace || S.expanded.has(d.namespace) || d.kind === "namespace") return null;
    return "group:" + d.namespace;
  }
  function rebuildVisible() {
    const nodes = new Map();
    const groups = new Map();
    for (const n of S.nodes.values()) {
      const g = groupOf(n.data);
      if (g) {
        let G = groups.get(g);
        if (!G) {
          // Group nodes keep their place across rebuilds.
          G = S.groupNodes.get(g) || { data: null, x: n.x, y: n.y, vx: 0, vy: 0, pinned: false };
          G.data = { id: g, name: n.data.namespace, kind: "namespace", namespace: n.data.namespace, labels: {}, addresses: [], external: false, requests_in: 0, requests_out: 0, members: 0, group: true };
          S.groupNodes.set(g, G);
          groups.set(g, G);
        }
        G.data.members++;
        G.data.name = n.data.namespace + " (" + G.data.members + ")";
        G.data.requests_in += n.data.requests_in; G.data.requests_out += n.data.requests_out;
        nodes.set(n.data.id, G);
      } else nodes.set(n.data.id, n);
    }
    const merged = new Map();
    for (const e of S.edges.values()) {
      if (S.hidden.has(e.protocol)) continue;
      const a = nodes.get(e.source), b = nodes.get(e.target);
      if (!a || !b) continue;
      const k = a.data.id + "|" + b.data.id + "|" + e.protocol;
      const m = merged.get(k);
      if (m) { m.requests += e.requests; m.errors += e.errors; m.members.push(e); }
      else merged.set(k, { a, b, protocol: e.protocol, requests: e.requests, errors: e.errors, members: [e], data: e });
    }
    // Parallel edges between one pair get distinct curvature.
    const pairs = new Map();
    for (const v of merged.values()) {
      const pk = v.a.data.id < v.b.data.id ? v.a.data.id + "|" + v.b.data.id : v.b.data.id + "|" + v.a.data.id;
      const list = pairs.get(pk) || [];
      list.push(v);
      pairs.set(pk, list);
    }
    for (const list of pairs.values()) list.forEach((v, i) => { v.bend = list.length === 1 ? (v.a === v.b ? 1 : 0) : (i - (list.length - 1) / 2) * 0.35 + (v.a.data.id < v.b.data.id ? 0 : 0.0001); });
    const degree = new Map();
    for (const v of merged.values()) for (const n of [v.a, v.b]) degree.set(n, (degree.get(n) || 0) + 1);
    const badges = new Map();
    const edges = [];
    // Hubs (a DNS server, the API server) are collapsed only in big maps, where their spokes
    // would cover everything else.
    const hubMin = merged.size > HUB_MAP_EDGES ? Math.max(HUB_DEGREE, merged.size / 20) : Infinity;
    for (const v of merged.values()) {
      const hub = S.hubs && [v.a, v.b].find((n) => degree.get(n) > hubMin && n.data.id !== S.focus && n.data.id !== S.selectedNode);
      if (hub) { badges.set(hub, (badges.get(hub) || 0) + 1); continue; }
      edges.push(v);
    }
    const vis = new Set();
    for (const n of nodes.values()) vis.add(n);
    S.visible = { nodes: [...vis], edges, badges, byId: nodes, degree };
    const maxReq = edges.reduce((m, e) => Math.max(m, e.requests), 1);
    for (const e of edges) e.width = 1 + 5 * Math.log1p(e.requests) / Math.log1p(maxReq);
    buildLegend();
    S.dirty = false;
  }

  function buildLegend() {
    const present = new Set([...S.edges.values()].map((e) => e.protocol));
    const el = $("#legend");
    const want = [...present].sort().join(",");
    if (el.dataset.protocols === want) return;
    el.dataset.protocols = want;
    el.innerHTML = "";
    for (const p of [...present].sort()) {
      const b = document.createElement("button");
      b.type = "button";
      b.dataset.protocol = p;
      b.setAttribute("aria-pressed", String(!S.hidden.has(p)));
      b.innerHTML = "<i style=\"background:" + (PROTO_COLORS[p] || "#888") + "\"></i>" + esc(p);
      b.onclick = () => { if (S.hidden.has(p)) S.hidden.delete(p); else S.hidden.add(p); b.setAttribute("aria-pressed", String(!S.hidden.has(p))); S.dirty = true; };
      el.appendChild(b);
    }
  }

  // ---- layout: Barnes–Hut repulsion, springs along edges, gentle gravity ----
  function tick() {
    const ns = S.visible.nodes;
    if (!ns.length) return;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const n of ns) { if (n.x < minX) minX = n.x; if (n.y < minY) minY = n.y; if (n.x > maxX) maxX = n.x; if (n.y > maxY) maxY = n.y; }
    const size = Math.max(maxX - minX, maxY - minY) + 1;
    const root = { x0: minX, y0: minY, s: size, m: 0, cx: 0, cy: 0, kids: null, body: null };
    const insert = (q, n, depth) => {
      q.cx = (q.cx * q.m + n.x) / (q.m + 1); q.cy = (q.cy * q.m + n.y) / (q.m + 1); q.m++;
      if (!q.kids && !q.body) { q.body = n; return; }
      if (depth > 30) return;
      if (!q.kids) {
        q.kids = [null, null, null, null];
        const b = q.body; q.body = null;
        sub(q, b, depth);
      }
      sub(q, n, depth);
    };
    const sub = (q, n, depth) => {
      const h = q.s / 2;
      const i = (n.x >= q.x0 + h ? 1 : 0) + (n.y >= q.y0 + h ? 2 : 0);
      if (!q.kids[i]) q.kids[i] = { x0: q.x0 + (i & 1 ? h : 0), y0: q.y0 + (i & 2 ? h : 0), s: h, m: 0, cx: 0, cy: 0, kids: null, body: null };
      insert(q.kids[i], n, depth + 1);
    };
    for (const n of ns) insert(root, n, 0);
    const alpha = S.alpha;
    const K = 900;
    const repel = (q, n) => {
      if (!q || q.m === 0 || q.body === n) return;
      const dx = n.x - q.cx, dy = n.y - q.cy;
      let d2 = dx * dx + dy * dy;
      if (q.kids && q.s * q.s > 0.64 * d2) { for (const k of q.kids) repel(k, n); return; }
      if (d2 < 1) d2 = 1;
      const f = (K * q.m * alpha) / d2;
      n.vx += dx * f; n.vy += dy * f;
    };
    for (const n of ns) repel(root, n);
    for (const e of S.visible.edges) {
      if (e.a === e.b) continue;
      const dx = e.b.x - e.a.x, dy = e.b.y - e.a.y;
      const d = Math.sqrt(dx * dx + dy * dy) || 1;
      const f = ((d - 80) / d) * 0.06 * alpha;
      e.a.vx += dx * f; e.a.vy += dy * f; e.b.vx -= dx * f; e.b.vy -= dy * f;
    }
    for (const n of ns) {
      n.vx -= n.x * 0.002 * alpha; n.vy -= n.y * 0.002 * alpha;
      if (n.pinned || n === S.dragging) { n.vx = 0; n.vy = 0; continue; }
      const v = Math.sqrt(n.vx * n.vx + n.vy * n.vy);
      const cap = 30;
      if (v > cap) { n.vx *= cap / v; n.vy *= cap / v; }
      n.x += n.vx; n.y += n.vy;
      n.vx *= 0.6; n.vy *= 0.6;
    }
    S.alpha *= 0.985;
    if (S.alpha < 0.005) S.alpha = 0;
  }

  // ---- drawing ----
  function resize() {
    const r = canvas.getBoundingClientRect();
    const dpr = window.devicePixelRatio || 1;
    canvas.width = Math.max(1, r.width * dpr);
    canvas.height = Math.max(1, r.height * dpr);
  }
  const toScreen = (x, y) => [(x * S.view.k + S.view.tx), (y * S.view.k + S.view.ty)];
  const toWorld = (sx, sy) => [(sx - S.view.tx) / S.view.k, (sy - S.view.ty) / S.view.k];
  // World radius by traffic, but never under three screen pixels when zoomed out.
  const radius = (n) => Math.max(5 + Math.min(14, Math.sqrt((n.data.requests_in || 0) + (n.data.requests_out || 0)) * 0.6), 3 / S.view.k);

  function neighbourhood() {
    if (!S.focus) return null;
    const f = S.visible.byId && S.visible.byId.get(S.focus);
    if (!f) return null;
    const set = new Set([f]);
    for (const e of S.visible.edges) { if (e.a === f) set.add(e.b); if (e.b === f) set.add(e.a); }
    return set;
  }
  function curve(e) {
    const [x1, y1] = [e.a.x, e.a.y], [x2, y2] = [e.b.x, e.b.y];
    if (e.a === e.b) return [x1, y1, x1 + 30, y1 - 40, x2, y2];
    const mx = (x1 + x2) / 2, my = (y1 + y2) / 2;
    const dx = x2 - x1, dy = y2 - y1;
    return [x1, y1, mx - dy * e.bend, my + dx * e.bend, x2, y2];
  }

  function draw() {
    const t0 = performance.now();
    const dpr = window.devicePixelRatio || 1;
    const css = getComputedStyle(document.documentElement);
    const W = canvas.width, H = canvas.height;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.clearRect(0, 0, W, H);
    ctx.setTransform(dpr * S.view.k, 0, 0, dpr * S.view.k, dpr * S.view.tx, dpr * S.view.ty);
    const near = neighbourhood();
    const [wx0, wy0] = toWorld(0, 0), [wx1, wy1] = toWorld(W / dpr, H / dpr);
    const inView = (x, y, pad) => x > wx0 - pad && x < wx1 + pad && y > wy0 - pad && y < wy1 + pad;
    // Edges, batched by colour and width. Dense views (thousands of edges on screen) draw
    // hairlines with opacity for volume, and arrows only on the busiest edges: a software
    // rasteriser strokes one-pixel lines many times faster than wide ones.
    const shown = [];
    for (const e of S.visible.edges) if (inView(e.a.x, e.a.y, 200) || inView(e.b.x, e.b.y, 200)) shown.push(e);
    const dense = shown.length > DENSE_EDGES;
    let arrowSet = null;
    if (dense) arrowSet = new Set(shown.slice().sort((x, y) => y.requests - x.requests).slice(0, DENSE_ARROWS));
    const batches = new Map();
    for (const e of shown) {
      const faded = near && !(near.has(e.a) && near.has(e.b));
      const w = dense ? Math.min(4, Math.ceil(e.width * 0.8)) : Math.round(e.width);
      const key = e.protocol + "|" + w + "|" + (faded ? 1 : 0) + "|" + (e === S.selectedEdge ? 1 : 0);
      let b = batches.get(key);
      if (!b) batches.set(key, (b = { color: PROTO_COLORS[e.protocol] || "#888", width: w, faded, sel: e === S.selectedEdge, list: [] }));
      b.list.push(e);
    }
    const arrowK = 1 / Math.max(0.35, S.view.k);
    for (const b of batches.values()) {
      if (dense) {
        ctx.globalAlpha = b.faded ? 0.06 : 0.2 + 0.15 * b.width;
        ctx.lineWidth = (b.sel ? 3 : 1) / S.view.k;
      } else {
        ctx.globalAlpha = b.faded ? 0.08 : 0.75;
        ctx.lineWidth = (b.sel ? b.width + 3 : b.width) / Math.sqrt(S.view.k);
      }
      ctx.strokeStyle = b.color;
      ctx.beginPath();
      for (const e of b.list) {
        const c = curve(e);
        ctx.moveTo(c[0], c[1]);
        ctx.quadraticCurveTo(c[2], c[3], c[4], c[5]);
      }
      ctx.stroke();
      // Arrow heads at the server end.
      ctx.fillStyle = b.color;
      ctx.beginPath();
      for (const e of b.list) {
        if (arrowSet && !arrowSet.has(e)) continue;
        const c = curve(e);
        const r = radius(e.b);
        let dx = c[4] - c[2], dy = c[5] - c[3];
        const d = Math.sqrt(dx * dx + dy * dy) || 1;
        dx /= d; dy /= d;
        const tipx = c[4] - dx * r, tipy = c[5] - dy * r;
        const s = (6 + (dense ? 0 : b.width)) * arrowK;
        ctx.moveTo(tipx, tipy);
        ctx.lineTo(tipx - dx * s - dy * s * 0.5, tipy - dy * s + dx * s * 0.5);
        ctx.lineTo(tipx - dx * s + dy * s * 0.5, tipy - dy * s - dx * s * 0.5);
        ctx.closePath();
      }
      ctx.fill();
    }
    // Nodes, batched by colour.
    const nb = new Map();
    for (const n of S.visible.nodes) {
      if (!inView(n.x, n.y, 40)) continue;
      const faded = near && !near.has(n);
      const key = nodeColor(n.data) + "|" + (faded ? 1 : 0);
      let b = nb.get(key);
      if (!b) nb.set(key, (b = { color: nodeColor(n.data), faded, list: [] }));
      b.list.push(n);
    }
    for (const b of nb.values()) {
      ctx.globalAlpha = b.faded ? 0.15 : 1;
      ctx.fillStyle = b.color;
      ctx.beginPath();
      // Dense views: squares, which a software rasteriser fills far faster than circles.
      if (dense) for (const n of b.list) { const r = radius(n); ctx.rect(n.x - r, n.y - r, 2 * r, 2 * r); }
      else for (const n of b.list) { const r = radius(n); ctx.moveTo(n.x + r, n.y); ctx.arc(n.x, n.y, r, 0, Math.PI * 2); }
      ctx.fill();
    }
    ctx.globalAlpha = 1;
    // External nodes: dashed ring; pinned: solid ring; selected/focused: accent ring.
    ctx.lineWidth = 1.5 / S.view.k;
    ctx.setLineDash([3 / S.view.k, 2 / S.view.k]);
    ctx.strokeStyle = css.getPropertyValue("--fg");
    ctx.beginPath();
    for (const n of S.visible.nodes) if (n.data.external && inView(n.x, n.y, 40)) { const r = radius(n) + 2.5; ctx.moveTo(n.x + r, n.y); ctx.arc(n.x, n.y, r, 0, Math.PI * 2); }
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.beginPath();
    for (const n of S.visible.nodes) if (n.pinned) { const r = radius(n) + 1; ctx.moveTo(n.x + r, n.y); ctx.arc(n.x, n.y, r, 0, Math.PI * 2); }
    ctx.stroke();
    const acc = css.getPropertyValue("--accent");
    for (const id of [S.selectedNode, S.focus]) {
      const n = id && S.visible.byId && S.visible.byId.get(id);
      if (n) { ctx.strokeStyle = acc; ctx.lineWidth = 3 / S.view.k; ctx.beginPath(); ctx.arc(n.x, n.y, radius(n) + 4, 0, Math.PI * 2); ctx.stroke(); }
    }
    // Hub badges.
    ctx.font = (11 / S.view.k) + "px system-ui, sans-serif";
    for (const [n, count] of S.visible.badges) {
      const r = radius(n);
      const x = n.x + r, y = n.y - r;
      ctx.fillStyle = acc; ctx.beginPath(); ctx.arc(x, y, 8 / S.view.k, 0, Math.PI * 2); ctx.fill();
      ctx.fillStyle = "#fff"; ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.fillText(count > 99 ? "99+" : String(count), x, y);
    }
    // Labels: all when zoomed in, else the busiest and the highlighted ones.
    ctx.textAlign = "left"; ctx.textBaseline = "middle";
    ctx.fillStyle = css.getPropertyValue("--label");
    const many = S.visible.nodes.length > 150 && S.view.k < 1.2;
    let top = null;
    if (many) top = new Set([...S.visible.nodes].sort((a, b) => (b.data.requests_in + b.data.requests_out) - (a.data.requests_in + a.data.requests_out)).slice(0, 60));
    for (const n of S.visible.nodes) {
      if (!inView(n.x, n.y, 40)) continue;
      if (many && !top.has(n) && !(near && near.has(n))) continue;
      if (near && !near.has(n)) continue;
      ctx.fillText(label(n.data), n.x + radius(n) + 3 / S.view.k, n.y);
    }
    const dt = performance.now() - t0;
    S.frames.push(dt);
    if (S.frames.length > 240) S.frames.shift();
  }

  let lastFrame = 0;
  const frameGaps = [];
  function loop(ts) {
    if (lastFrame) { frameGaps.push(ts - lastFrame); if (frameGaps.length > 240) frameGaps.shift(); }
    lastFrame = ts;
    let t = performance.now();
    if (S.dirty) { rebuildVisible(); S.cost.rebuild.push(performance.now() - t); t = performance.now(); }
    if (!S.frozen && S.alpha > 0) { tick(); S.cost.tick.push(performance.now() - t); }
    for (const k in S.cost) if (S.cost[k].length > 240) S.cost[k].shift();
    draw();
    requestAnimationFrame(loop);
  }

  // ---- interaction ----
  function hitNode(sx, sy) {
    const [x, y] = toWorld(sx, sy);
    let best = null, bd = Infinity;
    for (const n of S.visible.nodes) {
      const dx = n.x - x, dy = n.y - y, d = dx * dx + dy * dy;
      const r = radius(n) + 3 / S.view.k;
      if (d < r * r && d < bd) { best = n; bd = d; }
    }
    return best;
  }
  function hitEdge(sx, sy) {
    const [x, y] = toWorld(sx, sy);
    let best = null, bd = (6 / S.view.k) ** 2;
    for (const e of S.visible.edges) {
      const c = curve(e);
      // Sample the curve: good enough for picking.
      for (let i = 0; i <= 8; i++) {
        const t = i / 8, u = 1 - t;
        const px = u * u * c[0] + 2 * u * t * c[2] + t * t * c[4], py = u * u * c[1] + 2 * u * t * c[3] + t * t * c[5];
        const d = (px - x) ** 2 + (py - y) ** 2;
        if (d < bd) { bd = d; best = e; }
      }
    }
    return best;
  }
  function tooltip(sx, sy) {
    const tt = $("#tooltip");
    const n = hitNode(sx, sy);
    const e = n ? null : hitEdge(sx, sy);
    if (!n && !e) { tt.hidden = true; return; }
    let h;
    if (n) {
      const d = n.data;
      h = "<b>" + esc(label(d)) + "</b>" + esc(d.kind) + (d.external ? ", external" : "") + "<br>in " + fmtN(d.requests_in) + " · out " + fmtN(d.requests_out) + (d.addresses && d.addresses.length ? "<br><span class=muted>" + esc(d.addresses.slice(0, 4).join(", ")) + "</span>" : "") + (d.folded ? "<br>" + fmtN(d.folded) + " endpoints folded here" : "") + (S.visible.badges.get(n) ? "<br>" + S.visible.badges.get(n) + " edges collapsed" : "");
    } else {
      const d = e.data;
      h = "<b>" + esc(label(e.a.data)) + " → " + esc(label(e.b.data)) + "</b>" + esc(e.protocol) + "<br>requests " + fmtN(e.requests) + " · errors " + fmtN(e.errors) + (e.members.length === 1 ? "<br>latency p50 " + fmtUs(d.latency_us.p50) + " · p99 " + fmtUs(d.latency_us.p99) + "<br>bytes ↑ " + fmtB(d.bytes.request) + " ↓ " + fmtB(d.bytes.response) : "<br>" + e.members.length + " edges grouped");
    }
    tt.innerHTML = h;
    tt.hidden = false;
    tt.style.left = Math.min(sx + 14, canvas.clientWidth - 300) + "px";
    tt.style.top = sy + 14 + "px";
  }

  let drag = null;
  canvas.addEventListener("mousedown", (ev) => {
    const n = hitNode(ev.offsetX, ev.offsetY);
    drag = { n, x: ev.offsetX, y: ev.offsetY, tx: S.view.tx, ty: S.view.ty, moved: false };
    if (n) S.dragging = n;
  });
  window.addEventListener("mousemove", (ev) => {
    const r = canvas.getBoundingClientRect();
    const sx = ev.clientX - r.left, sy = ev.clientY - r.top;
    if (drag) {
      if (Math.abs(sx - drag.x) + Math.abs(sy - drag.y) > 3) drag.moved = true;
      if (drag.n) { const [x, y] = toWorld(sx, sy); drag.n.x = x; drag.n.y = y; drag.n.pinned = true; }
      else { S.view.tx = drag.tx + sx - drag.x; S.view.ty = drag.ty + sy - drag.y; }
      $("#tooltip").hidden = true;
    } else if (ev.target === canvas) tooltip(sx, sy);
  });
  window.addEventListener("mouseup", (ev) => {
    if (drag && !drag.moved && ev.target === canvas) click(drag.x, drag.y);
    drag = null; S.dragging = null;
  });
  canvas.addEventListener("dblclick", (ev) => { const n = hitNode(ev.offsetX, ev.offsetY); if (n) n.pinned = false; });
  canvas.addEventListener("mouseleave", () => { $("#tooltip").hidden = true; });
  canvas.addEventListener("wheel", (ev) => {
    ev.preventDefault();
    zoomAt(ev.offsetX, ev.offsetY, Math.exp(-ev.deltaY * 0.0015));
  }, { passive: false });
  function zoomAt(sx, sy, f) {
    const k = Math.min(8, Math.max(0.05, S.view.k * f));
    const [wx, wy] = toWorld(sx, sy);
    S.view.k = k; S.view.tx = sx - wx * k; S.view.ty = sy - wy * k;
  }
  canvas.addEventListener("keydown", (ev) => {
    const step = 60;
    if (ev.key === "ArrowLeft") S.view.tx += step;
    else if (ev.key === "ArrowRight") S.view.tx -= step;
    else if (ev.key === "ArrowUp") S.view.ty += step;
    else if (ev.key === "ArrowDown") S.view.ty -= step;
    else if (ev.key === "+" || ev.key === "=") zoomAt(canvas.clientWidth / 2, canvas.clientHeight / 2, 1.25);
    else if (ev.key === "-") zoomAt(canvas.clientWidth / 2, canvas.clientHeight / 2, 0.8);
    else return;
    ev.preventDefault();
  });
  document.addEventListener("keydown", (ev) => {
    if (ev.target.matches("input, select, textarea")) { if (ev.key === "Escape") ev.target.blur(); return; }
    if (ev.key === "/") { ev.preventDefault(); $("#kfl").focus(); }
    else if (ev.key === "p") $("#pause").click();
    else if (ev.key === "f") $("#freeze").click();
    else if (ev.key === "Escape") closePanel();
  });
  function fit() {
    const ns = S.visible.nodes;
    if (!ns.length) return;
    let minX = Infinity, minY = Infinity, maxX = -Infinity, maxY = -Infinity;
    for (const n of ns) { minX = Math.min(minX, n.x); minY = Math.min(minY, n.y); maxX = Math.max(maxX, n.x); maxY = Math.max(maxY, n.y); }
    const w = canvas.clientWidth, h = canvas.clientHeight;
    const k = Math.min(4, 0.85 * Math.min(w / (maxX - minX + 80), h / (maxY - minY + 80)));
    S.view.k = k; S.view.tx = w / 2 - ((minX + maxX) / 2) * k; S.view.ty = h / 2 - ((minY + maxY) / 2) * k;
  }

  // ---- details panel ----
  function closePanel() { $("#panel").hidden = true; S.selectedNode = null; S.selectedEdge = null; S.dirty = true; }
  function click(sx, sy) {
    const n = hitNode(sx, sy);
    if (n && n.data.group) { S.expanded.add(n.data.namespace); S.dirty = true; return; }
    if (n) return showNode(n);
    const e = hitEdge(sx, sy);
    if (e) return showEdge(e);
    closePanel();
  }
  function showNode(n) {
    const d = n.data;
    S.selectedNode = d.id; S.selectedEdge = null; S.focus = S.focus === d.id ? S.focus : S.focus;
    const labels = Object.entries(d.labels || {}).map(([k, v]) => esc(k) + "=" + esc(v)).join("<br>");
    const body = "<h2>" + esc(label(d)) + "</h2>" + statsRows([
      ["id", esc(d.id)], ["kind", esc(d.kind) + (d.external ? " (external)" : "")], ["namespace", esc(d.namespace || "—")],
      ["requests in", fmtN(d.requests_in)], ["requests out", fmtN(d.requests_out)],
      ["addresses", esc((d.addresses || []).join(", "))], ["labels", labels || "—"],
    ].concat(d.folded ? [["folded", fmtN(d.folded) + " endpoints past the map's node budget (--max-nodes)"]] : []));
    openPanel(body, { node: d.id });
  }
  function showEdge(e) {
    S.selectedEdge = e; S.selectedNode = null;
    const d = e.data;
    const body = "<h2>" + esc(label(e.a.data)) + " → " + esc(label(e.b.data)) + "</h2>" + statsRows([
      ["protocol", esc(e.protocol)], ["requests", fmtN(e.requests)], ["responses", fmtN(d.responses)], ["errors", fmtN(e.errors)],
      ["latency p50 / p90 / p99", fmtUs(d.latency_us.p50) + " / " + fmtUs(d.latency_us.p90) + " / " + fmtUs(d.latency_us.p99)],
      ["bytes request / response", fmtB(d.bytes.request) + " / " + fmtB(d.bytes.response)],
      ["first / last seen", esc(d.first_seen) + "<br>" + esc(d.last_seen)],
    ].concat(d.nodes && d.nodes.length ? [["seen by", d.nodes.map(esc).join(", ")]] : []));
    openPanel(body, e.members.length === 1 ? { edge: edgeKey(d) } : { node: e.a.data.id });
  }
  async function openPanel(head, part) {
    const panel = $("#panel");
    panel.hidden = false;
    const pb = $("#panelbody");
    if (OFFLINE) { pb.innerHTML = head + "<p class=muted>Entries are not part of an offline map.</p>"; return; }
    const q = Object.assign({ level: S.level, q: S.q }, windowParams(), part);
    if (S.win === "live") delete q.from;
    const exportUrl = api("/api/export.pcapng", q);
    pb.innerHTML = head + "<p><a id=exportpart href=\"" + esc(exportUrl) + "\" download>Export these as pcapng</a></p><h3>Entries</h3><div id=entries class=muted>loading…</div>";
    try {
      const r = await fetch(api("/api/entries", Object.assign({ limit: 200 }, q)));
      const body = await r.json();
      if (!r.ok) throw new Error(body.error);
      const rows = body.entries.map((x) => "<tr tabindex=0 data-id=\"" + x.id + "\"><td>" + esc(String(x.timestamp).slice(11, 23)) + "</td><td>" + esc(x.protocol) + "</td><td>" + esc(summary(x)) + "</td><td class=\"" + (x.error ? "err" : "") + "\">" + esc(x.status_code) + "</td><td>" + fmtUs(x.elapsed_time) + "</td></tr>").join("");
      const el = $("#entries");
      el.className = "";
      el.innerHTML = body.entries.length ? "<table class=entries><tr><th>time</th><th>proto</th><th>summary</th><th>status</th><th>latency</th></tr>" + rows + "</table>" + (body.next_cursor ? "<p class=muted>first 200 shown</p>" : "") : "<p class=muted>no entries in this window</p>";
      for (const tr of el.querySelectorAll("tr[data-id]")) {
        const open = () => showEntry(tr.dataset.id);
        tr.onclick = open;
        tr.onkeydown = (ev) => { if (ev.key === "Enter") open(); };
      }
    } catch (e) { $("#entries").textContent = "error: " + e.message; }
  }
  async function showEntry(id) {
    const pb = $("#panelbody");
    const back = "<button type=button id=back>← back</button>";
    try {
      const r = await fetch(api("/api/entries/" + encodeURIComponent(id)));
      const x = await r.json();
      if (!r.ok) throw new Error(x.error);
      pb.innerHTML = back + entryDetail(x);
    } catch (e) { pb.innerHTML = back + "<p class=err>" + esc(e.message) + "</p>"; }
    $("#back").onclick = () => { if (S.selectedEdge) showEdge(S.selectedEdge); else { const n = S.visible.byId.get(S.selectedNode); if (n) showNode(n); } };
  }
  $("#close").onclick = closePanel;

  // ---- exports ----
  function currentMap() {
    return { version: 1, level: S.level, nodes: [...S.nodes.values()].map((n) => n.data), edges: [...S.edges.values()], stats: S.stats || {} };
  }
  const toSvg = () => svgOf(S.visible.nodes, S.visible.edges, { curve, radius, nodeColor });
  $("#export").onchange = (ev) => {
    const f = ev.target.value;
    ev.target.value = "";
    const m = currentMap();
    if (f === "json") download("wiremap-map.json", new Blob([JSON.stringify(m, null, 2)], { type: "application/json" }));
    else if (f === "dot") download("wiremap-map.dot", new Blob([toDot(m)], { type: "text/vnd.graphviz" }));
    else if (f === "svg") download("wiremap-map.svg", new Blob([toSvg()], { type: "image/svg+xml" }));
    else if (f === "png") canvas.toBlob((b) => download("wiremap-map.png", b), "image/png");
  };

  // ---- controls ----
  const kfl = $("#kfl");
  kfl.value = S.q;
  $("#level").value = S.level;
  $("#window").value = S.win;
  if (S.win === "custom") { $("#custom").hidden = false; $("#from").value = S.from; $("#to").value = S.to; }
  const historyKey = "wiremap.kfl.history";
  const loadHistory = () => { try { return JSON.parse(localStorage.getItem(historyKey) || "[]"); } catch (e) { return []; } };
  const showHistory = () => { $("#kflhistory").innerHTML = loadHistory().map((h) => "<option value=\"" + esc(h) + "\">").join(""); };
  showHistory();
  let checkSeq = 0;
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
  kfl.addEventListener("input", () => { clearTimeout(debounce); debounce = setTimeout(() => check(kfl.value), 250); });
  async function applyFilter(text) {
    if (!(await check(text))) return;
    S.q = text.trim();
    if (S.q) { const h = [S.q, ...loadHistory().filter((x) => x !== S.q)].slice(0, 20); localStorage.setItem(historyKey, JSON.stringify(h)); showHistory(); }
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
  const toggle = (el, on) => el.setAttribute("aria-pressed", String(on));
  $("#pause").onclick = () => {
    S.paused = !S.paused;
    toggle($("#pause"), S.paused);
    $("#pause").textContent = S.paused ? "Resume" : "Pause";
    if (!S.paused) { for (const m of S.buffered) applyDelta(m); S.buffered = []; }
    setStatus();
  };
  $("#freeze").onclick = () => { S.frozen = !S.frozen; toggle($("#freeze"), S.frozen); };
  $("#group").onclick = () => { S.group = !S.group; S.expanded.clear(); toggle($("#group"), S.group); S.dirty = true; S.alpha = 0.5; };
  $("#hubs").onclick = () => { S.hubs = !S.hubs; toggle($("#hubs"), S.hubs); S.dirty = true; };
  $("#search").addEventListener("change", (ev) => {
    const v = ev.target.value.trim().toLowerCase();
    if (!v) { S.focus = null; return; }
    const n = [...S.nodes.values()].find((n) => label(n.data).toLowerCase() === v) || [...S.nodes.values()].find((n) => label(n.data).toLowerCase().includes(v));
    if (!n) { S.focus = null; return; }
    S.focus = n.data.id;
    S.dirty = true;
    const [sx, sy] = toScreen(n.x, n.y);
    S.view.tx += canvas.clientWidth / 2 - sx; S.view.ty += canvas.clientHeight / 2 - sy;
  });
  const setTheme = (t) => { document.documentElement.dataset.theme = t; localStorage.setItem("wiremap.theme", t); };
  setTheme(params.get("theme") || localStorage.getItem("wiremap.theme") || (matchMedia("(prefers-color-scheme: dark)").matches ? "dark" : "light"));
  $("#theme").onclick = () => setTheme(document.documentElement.dataset.theme === "dark" ? "light" : "dark");
  if (OFFLINE) for (const id of ["#kflform", "#window", "#pause", "#buffered"]) $(id).hidden = true;

  window.addEventListener("resize", resize);
  resize();
  S.view.tx = canvas.clientWidth / 2; S.view.ty = canvas.clientHeight / 2;
  requestAnimationFrame(loop);
  load();
  setInterval(setStatus, 1000);

  // ---- what tests and the performance page read ----
  window.wiremap = {
    state: S,
    load,
    fit,
    applyDelta,
    replaceAll,
    // The data behind the picture, as the tests compare it.
    view() {
      if (S.dirty) rebuildVisible();
      return {
        nodes: S.visible.nodes.map((n) => ({ id: n.data.id, name: n.data.name, kind: n.data.kind, x: n.x, y: n.y, pinned: n.pinned })),
        edges: S.visible.edges.map((e) => ({ source: e.a.data.id, target: e.b.data.id, protocol: e.protocol, requests: e.requests })),
        seq: S.seq, deltas: S.deltas, paused: S.paused, buffered: S.buffered.length, level: S.level, q: S.q, window: S.win, error: S.error,
        loading: S.loading, frozen: S.frozen, hidden: [...S.hidden], badges: S.visible.badges.size,
      };
    },
    frameStats() {
      const g = frameGaps.slice().sort((a, b) => a - b);
      const d = S.frames.slice().sort((a, b) => a - b);
      const pct = (a, p) => (a.length ? a[Math.min(a.length - 1, Math.floor(a.length * p))] : 0);
      const t = S.cost.tick.slice().sort((a, b) => a - b), r = S.cost.rebuild.slice().sort((a, b) => a - b);
      return { frames: g.length, gap_p50: pct(g, 0.5), gap_p95: pct(g, 0.95), draw_p50: pct(d, 0.5), draw_p95: pct(d, 0.95), tick_p50: pct(t, 0.5), rebuild_p50: pct(r, 0.5), fps: g.length ? 1000 / (g.reduce((a, b) => a + b, 0) / g.length) : 0 };
    },
    resetFrames() { frameGaps.length = 0; S.frames.length = 0; S.cost.tick.length = 0; S.cost.rebuild.length = 0; },
    zoomAt, toScreen, hitEdge, showEdge, showNode,
    // Screen point in the middle of a drawn edge.
    edgePoint(source, target, protocol) {
      const e = S.visible.edges.find((e) => e.a.data.id === source && e.b.data.id === target && e.protocol === protocol);
      if (!e) return null;
      const c = curve(e);
      return toScreen(0.25 * c[0] + 0.5 * c[2] + 0.25 * c[4], 0.25 * c[1] + 0.5 * c[3] + 0.25 * c[5]);
    },
  };
})();
