// Types of the vendored bundle (graph.js), for `tsc --noEmit` over the UI's modules: the parts
// of graphology, sigma.js and the layouts the UI uses, loosely typed. Hand-written (the
// bundle is rebuilt by scripts/update-ui-vendor; this file is kept).
export type Attributes = Record<string, any>;
export declare class Graph {
  constructor(options?: { multi?: boolean; type?: "directed" | "undirected" | "mixed"; allowSelfLoops?: boolean });
  order: number;
  size: number;
  addNode(key: string, attributes?: Attributes): string;
  dropNode(key: string): void;
  hasNode(key: string): boolean;
  addEdge(source: string, target: string, attributes?: Attributes): string;
  addDirectedEdgeWithKey(key: string, source: string, target: string, attributes?: Attributes): string;
  dropEdge(key: string): void;
  hasEdge(keyOrSource: string, target?: string): boolean;
  source(edge: string): string;
  target(edge: string): string;
  neighbors(node: string): string[];
  getNodeAttributes(key: string): Attributes;
  getNodeAttribute(key: string, name: string): any;
  replaceNodeAttributes(key: string, attributes: Attributes): void;
  mergeNodeAttributes(key: string, attributes: Attributes): void;
  getEdgeAttributes(key: string): Attributes;
  mergeEdgeAttributes(key: string, attributes: Attributes): void;
  forEachNode(fn: (key: string, attributes: Attributes) => void): void;
  forEachEdge(fn: (key: string, attributes: Attributes, source: string, target: string) => void): void;
  updateEachNodeAttributes(fn: (key: string, attributes: Attributes) => Attributes, hints?: { attributes?: string[] }): void;
}
export interface Coordinates { x: number; y: number }
export interface CameraState { x: number; y: number; ratio: number; angle: number }
export declare class Camera {
  x: number; y: number; ratio: number; angle: number;
  getState(): CameraState;
  setState(state: Partial<CameraState>): this;
}
export interface SigmaEvent { node?: string; edge?: string; event: Coordinates & { original: Event }; preventSigmaDefault(): void }
export declare class Sigma {
  constructor(graph: Graph, container: HTMLElement, settings?: Record<string, any>);
  on(event: string, handler: (e: any) => void): this;
  getCamera(): Camera;
  getMouseCaptor(): { on(event: string, handler: (e: any) => void): void };
  getDimensions(): { width: number; height: number };
  getNodeDisplayData(key: string): (Coordinates & { size: number; label?: string; color: string; hidden?: boolean }) | undefined;
  getEdgeAtPoint(x: number, y: number): string | null;
  framedGraphToViewport(c: Coordinates): Coordinates;
  viewportToFramedGraph(c: Coordinates): Coordinates;
  graphToViewport(c: Coordinates, override?: { cameraState?: CameraState }): Coordinates;
  viewportToGraph(c: Coordinates): Coordinates;
  scaleSize(size: number): number;
  getBBox(): { x: [number, number]; y: [number, number] };
  getCustomBBox(): { x: [number, number]; y: [number, number] } | null;
  setCustomBBox(b: { x: [number, number]; y: [number, number] } | null): this;
  refresh(): this;
  kill(): void;
}
export declare class FA2Layout {
  constructor(graph: Graph, params?: { settings?: Record<string, any> });
  worker: Worker;
  start(): this;
  stop(): this;
  kill(): void;
}
export declare const forceAtlas2: {
  inferSettings(graph: Graph | number): Record<string, any>;
  assign(graph: Graph, params: { iterations: number; settings?: Record<string, any> }): void;
};
export declare const noverlap: {
  assign(graph: Graph, params?: { maxIterations?: number; settings?: Record<string, any> }): void;
};
