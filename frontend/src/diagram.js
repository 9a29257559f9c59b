// The network drawn: the nodes the validation reports (inputs, neuron populations, layer nodes)
// in columns by their distance from the inputs, each a circle sized by its neuron count, and the
// edges as arrows labelled with their connectivity, weight, delay and synapse. Clicking (or
// Enter on) a population calls onPick with its name.

const SVG = "http://www.w3.org/2000/svg";
const FILL = { input: "#f3f4f6", population: "#dbeafe", layer: "#fef3c7" };

function element(name, attributes = {}, text = null) {
  const node = document.createElementNS(SVG, name);
  for (const [key, value] of Object.entries(attributes)) node.setAttribute(key, value);
  if (text != null) node.textContent = text;
  return node;
}

// Each node's column: its distance from the nearest input along the edges (a breadth-first
// walk), so that populations driven side by side (Brunel's E and I) stand in one column; nodes no
// input reaches follow the deepest.
export function columns(nodes, edges) {
  const column = new Map();
  let frontier = nodes.filter((n) => n.kind === "input").map((n) => n.name);
  if (!frontier.length && nodes.length) frontier = [nodes[0].name];
  frontier.forEach((name) => column.set(name, 0));
  for (let depth = 1; frontier.length; depth++) {
    const next = [];
    for (const edge of edges) {
      if (frontier.includes(edge.from) && !column.has(edge.to)) {
        column.set(edge.to, depth);
        next.push(edge.to);
      }
    }
    frontier = next;
  }
  const deepest = Math.max(0, ...column.values());
  for (const node of nodes) if (!column.has(node.name)) column.set(node.name, deepest + 1);
  return column;
}

export function edgeLabel(edge, dtMs) {
  if (!edge.type) return "";
  const parts = [edge.type.replaceAll("_", " ")];
  if (edge.k != null) parts[0] += ` k=${edge.k}`;
  if (edge.p != null) parts[0] += ` p=${edge.p}`;
  if (edge.weight != null) parts.push(`w ${edge.weight}`);
  if (edge.delay) {
    const [low, high] = edge.delay.map((steps) => +(steps * dtMs).toPrecision(4));
    parts.push(low === high ? `d ${low} ms` : `d ${low}–${high} ms`);
  }
  if (edge.synapse && edge.synapse !== "delta") parts.push(edge.synapse.replaceAll("_", " "));
  if (edge.plastic) parts.push("plastic");
  return parts.join(", ");
}

export function drawNetwork(container, { nodes, edges }, { dtMs, onPick, picked }) {
  const column = columns(nodes, edges);
  const byColumn = [];
  for (const node of nodes) (byColumn[column.get(node.name)] ??= []).push(node);
  const width = Math.max(320, container.clientWidth - 4);
  const rowHeight = 170;
  const height = Math.max(...byColumn.map((c) => c?.length ?? 0)) * rowHeight + 40;
  const largest = Math.max(...nodes.map((n) => n.size), 1);
  const radius = (n) => 12 + 22 * Math.sqrt(n.size / largest);
  const place = new Map();
  byColumn.forEach((members, c) => {
    members?.forEach((node, r) => place.set(node.name, { x: ((c + 0.5) * width) / byColumn.length, y: 20 + (r + 0.5) * ((height - 40) / members.length) }));
  });
  const svg = element("svg", { width, height, viewBox: `0 0 ${width} ${height}`, role: "group", "aria-label": "The network: its nodes and edges" });
  const arrow = element("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
  arrow.append(element("path", { d: "M0 0L10 5L0 10z", fill: "#6b7280" }));
  const defs = element("defs");
  defs.append(arrow);
  svg.append(defs);
  const pairs = new Set(edges.map((e) => `${e.from}\u0000${e.to}`));
  for (const edge of edges) {
    const a = place.get(edge.from);
    const b = place.get(edge.to);
    const from = nodes.find((n) => n.name === edge.from);
    const to = nodes.find((n) => n.name === edge.to);
    if (!a || !b) continue;
    const label = edgeLabel(edge, dtMs);
    const group = element("g", { class: "edge", "data-from": edge.from, "data-to": edge.to });
    let path;
    let labelAt;
    if (edge.from === edge.to) { // a loop on the node's right
      const r = radius(from);
      path = `M${a.x + r * 0.8} ${a.y - r * 0.6}C${a.x + r * 3.2} ${a.y - r * 2} ${a.x + r * 3.2} ${a.y + r * 2} ${a.x + r * 0.8} ${a.y + r * 0.6}`;
      labelAt = { x: a.x + r * 2.6 + 4, y: a.y + 4, anchor: "start" };
    } else {
      // both directions between two nodes: each bows to its own side
      const bow = pairs.has(`${edge.to}\u0000${edge.from}`) ? 36 : 0;
      const dx = b.x - a.x;
      const dy = b.y - a.y;
      const length = Math.hypot(dx, dy) || 1;
      const [nx, ny] = [-dy / length, dx / length];
      const control = { x: (a.x + b.x) / 2 + nx * bow, y: (a.y + b.y) / 2 + ny * bow };
      const towards = (p, q, r) => {
        const d = Math.hypot(q.x - p.x, q.y - p.y) || 1;
        return { x: p.x + ((q.x - p.x) * r) / d, y: p.y + ((q.y - p.y) * r) / d };
      };
      const start = towards(a, control, radius(from));
      const end = towards(b, control, radius(to) + 2);
      path = `M${start.x} ${start.y}Q${control.x} ${control.y} ${end.x} ${end.y}`;
      // the label beside the curve's middle, on its outer side (left or right of a steep edge)
      const middle = { x: (a.x + 2 * control.x + b.x) / 4, y: (a.y + 2 * control.y + b.y) / 4 };
      const side = Math.abs(nx) > 0.7 ? Math.sign(nx * (bow || 1)) : 0;
      labelAt = side ? { x: middle.x + 6 * side, y: middle.y + 4, anchor: side > 0 ? "start" : "end" } : { x: middle.x, y: middle.y - 5 };
    }
    group.append(element("path", { d: path, fill: "none", stroke: edge.plastic ? "#9333ea" : "#6b7280", "stroke-width": 1.5, "marker-end": "url(#arrow)" }));
    if (label) group.append(element("text", { x: labelAt.x, y: labelAt.y, "text-anchor": labelAt.anchor ?? "middle", "font-size": 11, fill: "#374151", class: "edge-label" }, label));
    group.append(element("title", {}, `${edge.name ?? `${edge.from}->${edge.to}`}${label ? `: ${label}` : ""}${edge.synapses != null ? `, ${edge.synapses.toLocaleString()} synapses` : ""}`));
    svg.append(group);
  }
  for (const node of nodes) {
    const { x, y } = place.get(node.name);
    const pickable = node.kind === "population" && onPick;
    const group = element("g", { class: `node ${node.kind}`, "data-node": node.name });
    const r = radius(node);
    group.append(element("circle", { cx: x, cy: y, r, fill: FILL[node.kind], stroke: node.name === picked ? "#2563eb" : "#6b7280", "stroke-width": node.name === picked ? 3 : 1.5 }));
    if (node.kind === "input") group.append(element("circle", { cx: x, cy: y, r: r - 4, fill: "none", stroke: "#9ca3af", "stroke-dasharray": "3 2" }));
    group.append(element("text", { x, y: y + r + 14, "text-anchor": "middle", "font-size": 12, "font-weight": 600 }, node.name));
    group.append(element("text", { x, y: y + r + 28, "text-anchor": "middle", "font-size": 11, fill: "#6b7280" }, `${node.type.replaceAll("_", " ")}, ${node.size.toLocaleString()}`));
    if (pickable) {
      group.setAttribute("tabindex", "0");
      group.setAttribute("role", "button");
      group.setAttribute("aria-describedby", "network-note"); // its name: the text it shows
      group.style.cursor = "pointer";
      group.addEventListener("click", () => onPick(node.name));
      group.addEventListener("keydown", (event) => {
        if (event.key === "Enter" || event.key === " ") {
          event.preventDefault();
          onPick(node.name);
        }
      });
    }
    svg.append(group);
  }
  container.replaceChildren(svg);
  return svg;
}
