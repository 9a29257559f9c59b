// Reading a result's NPZ (a ZIP of .npy arrays, stored or deflated) in the browser, so that the
// plot data travels as binary: 2,000,000 spikes are 48 MB as int64 arrays and a few MB deflated,
// where JSON made the page parse 30 MB of text on its main thread.

// The types a result holds (results.py): int64 events, counts and neuron indices, float32 voltages
// and weights, int32 synapse sources and targets.
const DECODERS = {
  "<i8": (bytes, count) => lowWords(bytes, count), // event times, senders, batch entries and counts fit in 32 bits
  "<i4": (bytes, count) => new Int32Array(bytes.slice(0, count * 4).buffer),
  "<f4": (bytes, count) => new Float32Array(bytes.slice(0, count * 4).buffer),
};

// int64 little-endian values known to be in int32's range: their low words.
function lowWords(bytes, count) {
  const aligned = bytes.byteOffset % 4 === 0;
  const words = aligned ? new Int32Array(bytes.buffer, bytes.byteOffset, count * 2) : new Int32Array(bytes.slice(0, count * 8).buffer);
  const out = new Int32Array(count);
  for (let i = 0; i < count; i++) out[i] = words[2 * i];
  return out;
}

function utf32(bytes) {
  const codes = new Uint32Array(bytes.slice().buffer);
  let text = "";
  for (let i = 0; i < codes.length; i += 0x4000) text += String.fromCodePoint(...codes.subarray(i, i + 0x4000).filter((c) => c !== 0));
  return text;
}

// One .npy file: { shape, data } with data a typed array (or a string for numpy's "<U" strings).
export function parseNpy(bytes) {
  if (bytes[0] !== 0x93 || String.fromCharCode(...bytes.subarray(1, 6)) !== "NUMPY") throw new Error("not an NPY array");
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const major = bytes[6];
  const headerLength = major === 1 ? view.getUint16(8, true) : view.getUint32(8, true);
  const start = major === 1 ? 10 : 12;
  const header = new TextDecoder("latin1").decode(bytes.subarray(start, start + headerLength));
  const descr = /'descr':\s*'([^']+)'/.exec(header)?.[1];
  const shape = (/'shape':\s*\(([^)]*)\)/.exec(header)?.[1] ?? "").split(",").map((s) => s.trim()).filter(Boolean).map(Number);
  if (/'fortran_order':\s*True/.test(header)) throw new Error("Fortran-ordered arrays are not read");
  const body = bytes.subarray(start + headerLength);
  const count = shape.reduce((a, b) => a * b, 1);
  if (descr?.startsWith("<U")) return { shape, data: utf32(body) };
  const decode = DECODERS[descr];
  if (!decode) throw new Error(`NPY type ${descr} is not read`);
  return { shape, data: decode(body, count) };
}

async function inflate(bytes, size) {
  const stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("deflate-raw"));
  const out = new Uint8Array(size);
  let at = 0;
  const reader = stream.getReader();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    out.set(value, at);
    at += value.length;
  }
  if (at !== size) throw new Error(`an NPZ entry inflated to ${at} bytes, not ${size}`);
  return out;
}

// Every array of an NPZ by its key (the entry name without ".npy"), read one entry at a time so
// that only one entry's inflated bytes exist at once.
export async function parseNpz(buffer) {
  const bytes = new Uint8Array(buffer);
  const view = new DataView(buffer);
  let end = bytes.length - 22;
  while (end >= 0 && view.getUint32(end, true) !== 0x06054b50) end--;
  if (end < 0) throw new Error("not an NPZ (no ZIP directory)");
  const entries = view.getUint16(end + 10, true);
  let at = view.getUint32(end + 16, true);
  const arrays = {};
  for (let e = 0; e < entries; e++) {
    if (view.getUint32(at, true) !== 0x02014b50) throw new Error("a damaged NPZ directory");
    const method = view.getUint16(at + 10, true);
    const compressed = view.getUint32(at + 20, true);
    const size = view.getUint32(at + 24, true);
    const nameLength = view.getUint16(at + 28, true);
    const extraLength = view.getUint16(at + 30, true);
    const commentLength = view.getUint16(at + 32, true);
    const local = view.getUint32(at + 42, true);
    const name = new TextDecoder().decode(bytes.subarray(at + 46, at + 46 + nameLength));
    at += 46 + nameLength + extraLength + commentLength;
    const dataStart = local + 30 + view.getUint16(local + 26, true) + view.getUint16(local + 28, true);
    const stored = bytes.subarray(dataStart, dataStart + compressed);
    const raw = method === 0 ? stored : method === 8 ? await inflate(stored, size) : null;
    if (!raw) throw new Error(`NPZ entry ${name} uses ZIP method ${method}`);
    arrays[name.replace(/\.npy$/, "")] = parseNpy(raw);
  }
  return arrays;
}
