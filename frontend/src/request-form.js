// The common fields of a job request, as form fields: each with its label, its path in the
// request, its value now, and the placeholder a missing value shows (the server's default):
// the run, the input, each neuron layer's or population's parameters and a graph's edges.

const NEURON_PARAMS = ["v_th", "tau_mem_inv", "tau_syn_inv", "v_reset", "v_leak"];
const EDGE_FIELDS = [["weight", "weight"], ["k", "k (degree)"], ["p", "p"], ["delay", "delay (steps)"]];

export function formFields(body, defaultThreshold) {
  const fields = [{ label: "name", path: ["name"], type: "text", value: body.name, placeholder: "a label for the job list" }];
  fields.push({ label: "dt (s)", path: ["dt"], type: "number", value: body.dt, placeholder: "0.001" });
  const input = body.input && typeof body.input === "object" ? body.input : null;
  if (body.steps !== undefined || !input || input.steps === undefined) fields.push({ label: "steps", path: ["steps"], type: "number", value: body.steps });
  else fields.push({ label: "steps", path: ["input", "steps"], type: "number", value: input.steps });
  fields.push({ label: "seed", path: ["seed"], type: "number", value: body.seed, placeholder: "0" });
  if (input?.type === "poisson" && (typeof input.rates === "number" || input.rates === undefined)) {
    fields.push({ label: "input rate (Hz)", path: ["input", "rates"], type: "number", value: input.rates });
  }
  if (input?.type === "constant" && typeof input.value === "number") fields.push({ label: "input value", path: ["input", "value"], type: "number", value: input.value });
  // a chain's neuron layers, or a graph's populations and Poisson inputs
  const graph = Array.isArray(body.network?.nodes);
  const listed = graph ? body.network.nodes : Array.isArray(body.network?.layers) ? body.network.layers : [];
  const where = graph ? "nodes" : "layers";
  listed.forEach((layer, index) => {
    if (!layer || typeof layer !== "object") return;
    const name = layer.name ?? `${layer.type}_${index}`;
    if (graph && layer.type === "poisson" && typeof layer.rates === "number") {
      fields.push({ label: `${name}: rate (Hz)`, path: ["network", where, index, "rates"], type: "number", value: layer.rates });
    }
    if (!(layer.type in defaultThreshold)) return;
    const params = layer.params && typeof layer.params === "object" ? layer.params : {};
    const shown = layer.type === "izhikevich" ? Object.keys(params) : [...new Set([...NEURON_PARAMS.filter((key) => key === "v_th" || key in params), ...Object.keys(params)])];
    for (const key of shown) {
      if (params[key] !== undefined && typeof params[key] !== "number") continue; // per-neuron arrays stay in the JSON
      const placeholder = key === "v_th" && params.v_th === undefined ? String(defaultThreshold[layer.type]) : "";
      fields.push({ label: `${name}: ${key}`, path: ["network", where, index, "params", key], type: "number", value: params[key], placeholder });
    }
  });
  // a graph's edges: the weight and delay where each is one number, the in- or out-degree k, the
  // probability p (values drawn per synapse, or listed, stay in the JSON)
  (graph && Array.isArray(body.network.edges) ? body.network.edges : []).forEach((edge, index) => {
    if (!edge || typeof edge !== "object") return;
    const name = edge.name ?? `${edge.from}->${edge.to}`;
    for (const [key, label] of EDGE_FIELDS) {
      if (typeof edge[key] === "number") fields.push({ label: `${name}: ${label}`, path: ["network", "edges", index, key], type: "number", value: edge[key] });
    }
  });
  return fields;
}
