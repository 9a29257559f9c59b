// The JSON Schema linter's diagnostics in the words the server uses: each names its field path
// (network.layers[1].type), says what the field takes, read from the request's schema ("an
// integer > 0 or null"), and what it holds ("the string "2000""); a misspelt type or field is
// marked on its own line with the names the place allows and the nearest one. Messages the
// rules below do not know pass through with the field path in front.
import { formatLoc } from "../src/format.js";

function resolve(root, node) {
  let seen = 0;
  while (node?.$ref && seen++ < 32) node = node.$ref.slice(2).split("/").reduce((at, key) => at?.[key.replaceAll("~1", "/").replaceAll("~0", "~")], root);
  return node;
}

// The branch of a union (oneOf, anyOf) that ``value`` is meant for: the one its discriminator
// names, else the object branch sharing most of its keys, else the first.
function branch(root, node, value) {
  node = resolve(root, node);
  const options = node?.oneOf ?? node?.anyOf;
  if (!options) return node;
  const tag = node.discriminator && value && typeof value === "object" ? node.discriminator.mapping?.[value[node.discriminator.propertyName]] : null;
  if (tag) return branch(root, { $ref: tag }, value);
  const keys = value && typeof value === "object" && !Array.isArray(value) ? Object.keys(value) : [];
  let best = options[0];
  let shared = -1;
  for (const option of options) {
    const resolved = resolve(root, option);
    const count = keys.filter((key) => resolved?.properties && key in resolved.properties).length;
    if (count > shared) [best, shared] = [option, count];
  }
  return branch(root, best, value);
}

// The schema of the field at ``path`` in ``doc`` (``pick``: into the branch of a union its value
// is meant for; otherwise the union itself).
export function schemaAt(root, path, doc, pick = true) {
  let node = root;
  let value = doc;
  for (const part of path) {
    node = branch(root, node, value);
    node = typeof part === "number" ? node?.items : node?.properties?.[part] ?? (typeof node?.additionalProperties === "object" ? node.additionalProperties : undefined);
    value = value?.[part];
  }
  return pick ? branch(root, node, value) : resolve(root, node);
}

export function describeSchema(root, node, depth = 0) {
  node = resolve(root, node);
  if (!node || depth > 3) return "a value";
  if (node.const !== undefined) return JSON.stringify(node.const);
  if (node.enum) return node.enum.length === 1 ? JSON.stringify(node.enum[0]) : `one of ${node.enum.map((v) => JSON.stringify(v)).join(", ")}`;
  const options = node.oneOf ?? node.anyOf;
  if (options) return [...new Set(options.map((option) => describeSchema(root, option, depth + 1)))].join(" or ");
  const bounds = [];
  if (node.exclusiveMinimum !== undefined) bounds.push(`> ${node.exclusiveMinimum}`);
  if (node.minimum !== undefined) bounds.push(`>= ${node.minimum}`);
  if (node.exclusiveMaximum !== undefined) bounds.push(`< ${node.exclusiveMaximum}`);
  if (node.maximum !== undefined) bounds.push(`<= ${node.maximum}`);
  const bounded = bounds.length ? ` ${bounds.join(" and ")}` : "";
  switch (node.type) {
    case "integer":
      return `an integer${bounded}`;
    case "number":
      return `a number${bounded}`;
    case "string":
      return "a string";
    case "boolean":
      return "true or false";
    case "null":
      return "null";
    case "array":
      return "a list";
    case "object":
      return node.title ? `an object (${node.title})` : "an object";
    default:
      return "a value";
  }
}

function describeValue(text) {
  const trimmed = text.trim();
  if (trimmed.startsWith('"')) return `the string ${trimmed}`;
  if (trimmed.startsWith("[")) return "a list";
  if (trimmed.startsWith("{")) return "an object";
  return trimmed;
}

// Edits from a to b: insertions, deletions, substitutions and swaps of neighbours ("lfi" is one
// from "lif"), the optimal string alignment distance.
function distance(a, b) {
  const d = Array.from({ length: a.length + 1 }, (_, i) => Array.from({ length: b.length + 1 }, (_, j) => (i === 0 ? j : j === 0 ? i : 0)));
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
    }
  }
  return d[a.length][b.length];
}

// The allowed name nearest to a misspelt one (ties: the one of the same length), if near enough.
function nearest(word, choices) {
  let best = null;
  for (const choice of choices) {
    const rank = [distance(word.toLowerCase(), choice.toLowerCase()), Math.abs(choice.length - word.length)];
    if (rank[0] <= Math.max(2, Math.floor(word.length / 3)) && (!best || rank[0] < best.rank[0] || (rank[0] === best.rank[0] && rank[1] < best.rank[1]))) best = { choice, rank };
  }
  return best ? ` (did you mean '${best.choice}'?)` : "";
}

const pathOf = (pointer) => (pointer ? pointer.slice(1).split("/").map((part) => (/^\d+$/.test(part) ? Number(part) : part.replaceAll("~1", "/").replaceAll("~0", "~"))) : []);
// A field path (["network", "layers", 1]) as a JSON pointer ("/network/layers/1").
export const pointerOf = (path) => path.map((part) => `/${String(part).replaceAll("~", "~0").replaceAll("/", "~1")}`).join("");

// The diagnostics of the schema linter for the document ``text`` (already parsed: ``doc``),
// rewritten; ``pointers``: codemirror-json-schema's positions of each JSON pointer.
export function plainDiagnostics(diagnostics, { root, doc, text, pointers }) {
  if (!root) return diagnostics;
  // the deepest field whose key or value holds a position
  const fieldAt = (position) => {
    let found = "";
    for (const [pointer, place] of pointers) {
      const inside = (place.keyFrom != null && place.keyFrom <= position && position <= place.keyTo) || (place.valueFrom <= position && position <= place.valueTo);
      if (inside && pointer.length >= found.length) found = pointer;
    }
    return found;
  };
  const valueText = (pointer) => {
    const place = pointers.get(pointer);
    return place ? text.slice(place.valueFrom, place.valueTo) : "";
  };
  return diagnostics.map((diagnostic) => {
    const message = diagnostic.message;
    let match = /^Failed finding a matching oneOfProperty schema in `(.*)` where `(.*)` matches `(.*)`$/.exec(message);
    if (match) {
      const [, dotted, field, value] = match;
      const path = [...dotted.split(".").map((part) => (/^\d+$/.test(part) ? Number(part) : part)), field];
      const union = schemaAt(root, path.slice(0, -1), doc, false);
      const allowed = Object.keys(union?.discriminator?.mapping ?? {});
      const place = pointers.get(pointerOf(path));
      const listed = allowed.length ? `; the ${field}s here are ${allowed.join(", ")}` : "";
      return {
        ...diagnostic,
        from: place?.valueFrom ?? diagnostic.from,
        to: place?.valueTo ?? diagnostic.to,
        message: `${formatLoc(path)}: unknown ${field} '${value}'${nearest(value, allowed)}${listed}`,
      };
    }
    match = /^Additional property `(.*)` is not allowed$/.exec(message);
    const pointer = fieldAt(diagnostic.from);
    const path = pathOf(pointer);
    if (match) {
      const parent = match[1] === path.at(-1) ? path.slice(0, -1) : path;
      const fields = Object.keys(schemaAt(root, parent, doc)?.properties ?? {});
      const here = formatLoc([...parent, match[1]]);
      return { ...diagnostic, message: `${here}: not a field here${nearest(match[1], fields)}${fields.length ? `; the fields here are ${fields.join(", ")}` : ""}` };
    }
    const where = formatLoc(path) || "request";
    if (/^Expected |does not match any schema of/.test(message)) {
      return { ...diagnostic, message: `${where}: expected ${describeSchema(root, schemaAt(root, path, doc, false))}, got ${describeValue(valueText(pointer))}` };
    }
    match = /^Value in `.*` is `(.*)`, but should be `(.*)` at (minimum|maximum)$/.exec(message);
    if (match) return { ...diagnostic, message: `${where}: must be ${match[3] === "minimum" ? "at least" : "at most"} ${match[2]}, not ${match[1]}` };
    return { ...diagnostic, message: `${where}: ${message}` };
  });
}
