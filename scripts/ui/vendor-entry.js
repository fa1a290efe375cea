// What the web UI takes from npm, bundled into crates/wiremap-server/ui/vendor/graph.js by
// scripts/update-ui-vendor: graph model, WebGL renderer, layouts.
export { default as Graph } from "graphology";
export { default as Sigma } from "sigma";
export { default as FA2Layout } from "graphology-layout-forceatlas2/worker";
export { default as forceAtlas2 } from "graphology-layout-forceatlas2";
export { default as noverlap } from "graphology-layout-noverlap";
