// The result's spikes live here, off the page's main thread: this worker downloads the NPZ,
// decodes it, draws the raster into an OffscreenCanvas, and answers the questions the plots ask
// (rates, statistics, the spike under the cursor, voltages, CSV). The page only ever holds
// summaries, so a result of millions of spikes never stalls scrolling, typing or a click.
import { COLORS as PALETTE, rgbOf } from "./colors.js";
import { parseNpz } from "./npz.js";
import { MARKS_UP_TO } from "./result-data.js";
import { autocorrelation, populationMeasures, powerSpectrum, spikeStatistics, statisticsCsv } from "./stats.js";

const COLORS = PALETTE.map(rgbOf);

let result = null; // { meta, layers: { name: { shape, times, senders, batch, counts, voltages, voltageShape, voltageNeurons } } }
// What the raster shows: { times (steps, ascending), senders (row on the neuron axis), length (how
// many of them are spikes: the live view's arrays grow ahead), colors, dtMs, groups, and the
// statistics once computed }.
let view = null;
let canvas = null;
let ctx = null;

const handlers = {
  async load({ url, key }) {
    const response = await fetch(url, { headers: key ? { Authorization: `Bearer ${key}` } : {} });
    if (!response.ok) {
      let detail = response.statusText;
      try {
        detail = (await response.json()).detail;
      } catch {
        /* not JSON */
      }
      throw Object.assign(new Error(typeof detail === "string" ? detail : `HTTP ${response.status}`), { status: response.status });
    }
    const buffer = await response.arrayBuffer();
    const arrivedAt = performance.timeOrigin + performance.now();
    const arrays = await parseNpz(buffer);
    const meta = JSON.parse(arrays.meta.data);
    const layers = {};
    for (const [name, entry] of Object.entries(meta.layers)) {
      const get = (key) => arrays[`${name}/${key}`];
      layers[name] = {
        shape: entry.shape,
        times: get("times")?.data ?? null,
        senders: get("senders")?.data ?? null,
        batch: get("batch")?.data ?? null,
        counts: get("counts") ?? null,
        voltages: get("voltages")?.data ?? null,
        voltageShape: get("voltages")?.shape ?? null,
        voltageNeurons: get("voltage_neurons")?.data ?? null,
      };
    }
    const weights = {};
    for (const name of Object.keys(meta.weights ?? {})) {
      const get = (key) => arrays[`weights/${name}/${key}`];
      weights[name] = { final: get("final").data, steps: get("steps").data, snapshots: get("snapshots").data };
    }
    result = { meta, layers, weights };
    view = null;
    const weightSummary = {};
    for (const [name, w] of Object.entries(weights)) weightSummary[name] = { synapses: w.final.length, snapshots: w.steps.length };
    const summary = {};
    for (const [name, layer] of Object.entries(layers)) {
      summary[name] = {
        shape: layer.shape,
        spikes: layer.times ? layer.times.length : null,
        voltages: layer.voltages ? { shape: layer.voltageShape, neurons: layer.voltageNeurons ? Array.from(layer.voltageNeurons) : null } : null,
      };
    }
    return { meta, layers: summary, weights: weightSummary, bytes: buffer.byteLength, arrivedAt };
  },

  // A plastic edge's weights: a histogram of the final ones over [low, high] (the rule's bounds,
  // or the weights' range), the mean after each snapshot and at the end, and the course of
  // `picks` synapses spread over the final weights' ranks (the lowest to the highest).
  weights({ name, low, high, bins = 40, picks = 5 }) {
    const { final, steps, snapshots } = result.weights[name];
    const synapses = final.length;
    if (!(high > low)) {
      [low, high] = [Infinity, -Infinity];
      for (const w of final) [low, high] = [Math.min(low, w), Math.max(high, w)];
      if (!(high > low)) [low, high] = [low - 0.5, low + 0.5];
    }
    const width = (high - low) / bins;
    const counts = new Float64Array(bins);
    for (const w of final) counts[Math.min(bins - 1, Math.max(0, Math.floor((w - low) / width)))] += 1;
    const edges = Float64Array.from({ length: bins + 1 }, (_, b) => low + b * width);
    const dtMs = result.meta.dt * 1000;
    const times = Array.from(steps, (step) => step * dtMs); // the weights after step k, drawn at k dt as the voltages are
    const rows = steps.length;
    const mean = new Float64Array(rows + 1);
    for (let r = 0; r < rows; r++) {
      let sum = 0;
      for (let s = 0; s < synapses; s++) sum += snapshots[r * synapses + s];
      mean[r] = sum / synapses;
    }
    mean[rows] = final.reduce((a, b) => a + b, 0) / synapses;
    times.push((result.meta.steps - 1) * dtMs);
    const order = Array.from({ length: synapses }, (_, s) => s).sort((a, b) => final[a] - final[b]);
    const chosen = [...new Set(Array.from({ length: Math.min(picks, synapses) }, (_, k) => order[Math.round((k * (synapses - 1)) / Math.max(1, picks - 1))]))];
    const traces = chosen.map((synapse) => ({ synapse, values: Float64Array.from({ length: rows + 1 }, (_, r) => (r < rows ? snapshots[r * synapses + synapse] : final[synapse])) }));
    return { edges, counts, low, high, timesMs: Float64Array.from(times), mean, traces, synapses, snapshots: rows };
  },

  // The raster's content: one layer (or several stacked, bottom to top), one batch entry.
  select({ names, batch }) {
    const dtMs = result.meta.dt * 1000;
    const parts = [];
    let offset = 0;
    for (const [index, name] of names.entries()) {
      const layer = result.layers[name];
      const neurons = layer.shape.reduce((a, b) => a * b, 1);
      if (layer.times) parts.push({ ...entryOf(layer, batch), offset, color: index % COLORS.length, name, neurons });
      offset += neurons;
    }
    view = merge(parts, dtMs);
    view.length = view.times.length;
    view.groups = parts.map(({ name, offset: start, neurons, color, times }) => ({ name, start, neurons, color, spikes: times.length }));
    view.neurons = offset;
    return { spikes: view.times.length, neurons: offset, groups: view.groups };
  },

  liveReset({ neurons, dt }) {
    view = { times: new Int32Array(0), senders: new Int32Array(0), colors: null, dtMs: dt * 1000, groups: [], neurons, length: 0 };
    return {};
  },

  // A running job's chunk of spikes (batch entry 0 already picked), appended to the live view.
  liveAppend({ times, senders }) {
    const length = view.length + times.length;
    if (length > view.times.length) {
      const grow = (old) => {
        const bigger = new Int32Array(Math.max(length, 2 * old.length));
        bigger.set(old.subarray(0, view.length));
        return bigger;
      };
      view.times = grow(view.times);
      view.senders = grow(view.senders);
    }
    view.times.set(times, view.length);
    view.senders.set(senders, view.length);
    view.length = length;
    return { spikes: length };
  },

  canvas({ canvas: offscreen }) {
    canvas = offscreen;
    ctx = canvas.getContext("2d");
    return {};
  },

  draw(scales) {
    const started = performance.now();
    const drawn = drawRaster(scales);
    return { ...drawn, ms: performance.now() - started };
  },

  // The spike nearest to (t ms, neuron row), within slackMs in time and rowSlack rows.
  nearest({ t, row, slackMs, rowSlack }) {
    if (!view) return null;
    const { times, senders, dtMs } = view;
    const { length } = view;
    let best = -1;
    let bestDistance = Infinity;
    for (let i = lowerBound(times, length, (t - slackMs) / dtMs); i < length && times[i] * dtMs <= t + slackMs; i++) {
      const distance = Math.abs(senders[i] - row) + Math.abs(times[i] * dtMs - t) / (slackMs || 1);
      if (distance < bestDistance) [best, bestDistance] = [i, distance];
    }
    if (best < 0 || Math.abs(senders[best] - row) > rowSlack) return null;
    const group = groupOf(senders[best]);
    return { timeMs: times[best] * dtMs, row: senders[best], layer: group?.name ?? null, neuron: senders[best] - (group?.start ?? 0) };
  },

  // Population rate per group, in Hz per neuron: bin k holds [k*binMs, (k+1)*binMs).
  rate({ binMs, durationMs }) {
    const bins = Math.max(1, Math.ceil(durationMs / binMs));
    const { times, senders, dtMs } = view;
    const { length } = view;
    const groups = view.groups.length ? view.groups : [{ name: null, start: 0, neurons: view.neurons }];
    const rates = groups.map(() => new Float64Array(bins + 1));
    for (let i = 0; i < length; i++) rates[groupIndex(groups, senders[i])][Math.min(bins - 1, Math.floor((times[i] * dtMs) / binMs))] += 1;
    groups.forEach((group, g) => {
      const scale = 1000 / (binMs * Math.max(group.neurons, 1));
      for (let b = 0; b < bins; b++) rates[g][b] *= scale;
      rates[g][bins] = rates[g][bins - 1]; // the last bin's right edge
    });
    const edges = Float64Array.from({ length: bins + 1 }, (_, b) => b * binMs);
    return { edges, rates, names: groups.map((g) => g.name) };
  },

  // Per-neuron statistics of the one layer in view, and the histogram of all its intervals.
  statistics({ durationMs }) {
    const stats = statisticsOf(durationMs);
    const { intervals } = stats;
    let longest = 0;
    for (const isi of intervals) if (isi > longest) longest = isi;
    const bins = 40;
    const width = longest > 0 ? longest / bins : 1;
    const numbers = new Float64Array(bins);
    for (const isi of intervals) numbers[Math.min(bins - 1, Math.floor(isi / width))] += 1;
    const lefts = Float64Array.from({ length: bins }, (_, b) => b * width);
    return { columns: stats.columns, intervals: intervals.length, meanCv: stats.meanCv, withCv: stats.withCv, isi: { lefts, numbers, width } };
  },

  // Per population in view (each layer of the combined view, or the one layer): its measures
  // (stats.js) and, with ``histograms``, its intervals' and CVs' histograms on bins all
  // populations share, as the share of its intervals (or of its neurons with a CV) in each bin.
  populations({ durationMs, binMs, windowMs, histograms = true }) {
    const stats = statisticsOf(durationMs);
    const { count, cv } = stats.columns;
    const { steps } = result.meta;
    const binSteps = Math.max(1, Math.round(binMs / view.dtMs));
    const windowSteps = Math.max(1, Math.round(windowMs / view.dtMs));
    const groups = view.groups;
    const firstInterval = new Int32Array(view.neurons + 1); // where each row's intervals start in stats.intervals
    for (let row = 0; row < view.neurons; row++) firstInterval[row + 1] = firstInterval[row] + Math.max(0, count[row] - 1);
    const intervalsOf = (g) => stats.intervals.subarray(firstInterval[g.start], firstInterval[g.start + g.neurons]);
    const cvsOf = (g) => cv.subarray(g.start, g.start + g.neurons).filter((value) => !Number.isNaN(value));
    const measures = groups.map((g) => ({
      name: g.name,
      color: g.color,
      ...populationMeasures({ ...view, length: view.length, start: g.start, neurons: g.neurons, steps, binSteps, windowSteps, cv }),
    }));
    const histogram = (valuesOf, bins, floorHigh) => {
      const each = groups.map(valuesOf); // once per group: a CV's values are filtered out of every row's
      let high = floorHigh;
      for (const values of each) for (const value of values) high = Math.max(high, value);
      const width = high / bins;
      const shares = each.map((values) => {
        const share = new Float64Array(bins + 1);
        for (const value of values) share[Math.min(bins - 1, Math.floor(value / width))] += 1 / values.length;
        share[bins] = share[bins - 1]; // the last bin's right edge
        return share;
      });
      return { edges: Float64Array.from({ length: bins + 1 }, (_, b) => b * width), shares, counts: each.map((values) => values.length) };
    };
    return {
      measures,
      binMs: binSteps * view.dtMs,
      windowMs: windowSteps * view.dtMs,
      windows: Math.floor(steps / windowSteps),
      isi: histograms ? histogram(intervalsOf, 40, view.dtMs) : null,
      cv: histograms ? histogram(cvsOf, 30, 1) : null,
    };
  },

  // The population rate of each population in view, in bins of binMs (whole bins only): its
  // power spectrum and autocorrelation up to maxLagMs (stats.js).
  oscillations({ binMs, maxLagMs }) {
    const binSteps = Math.max(1, Math.round(binMs / view.dtMs));
    const bins = Math.floor(result.meta.steps / binSteps);
    const binS = (binSteps * view.dtMs) / 1000;
    const { times, senders, length, groups } = view;
    const rates = groups.map(() => new Float64Array(bins));
    for (let i = 0; i < length; i++) {
      const b = Math.floor(times[i] / binSteps);
      if (b < bins) rates[groupIndex(groups, senders[i])][b] += 1;
    }
    groups.forEach((g, k) => rates[k].forEach((value, b) => (rates[k][b] = value / (Math.max(g.neurons, 1) * binS))));
    const spectra = rates.map((rate) => powerSpectrum(rate, binS));
    const maxLag = Math.round(maxLagMs / (binSteps * view.dtMs));
    const correlations = rates.map((rate) => autocorrelation(rate, maxLag));
    return {
      binMs: binSteps * view.dtMs,
      bins,
      names: groups.map((g) => g.name),
      colors: groups.map((g) => g.color),
      frequencies: spectra[0]?.frequencies ?? new Float64Array(0),
      powers: spectra.map((s) => s.power),
      lagsMs: Float64Array.from({ length: correlations[0]?.length ?? 0 }, (_, k) => k * binSteps * view.dtMs),
      correlations,
    };
  },

  statisticsCsv({ durationMs }) {
    return statisticsCsv(statisticsOf(durationMs).columns);
  },

  counts({ name, batch }) {
    const counts = result.layers[name].counts;
    const neurons = counts.shape[counts.shape.length - 1];
    return { counts: counts.data.slice(batch * neurons, (batch + 1) * neurons) };
  },

  voltages({ name, batch, neurons }) {
    const layer = result.layers[name];
    const [steps, ...rest] = layer.voltageShape;
    const kept = rest[rest.length - 1];
    const batches = rest.length === 2 ? rest[0] : 1;
    const available = layer.voltageNeurons ? Array.from(layer.voltageNeurons) : null;
    const traces = neurons.map((neuron) => {
      const k = available ? available.indexOf(neuron) : neuron;
      const values = new Float64Array(steps);
      for (let t = 0; t < steps; t++) values[t] = layer.voltages[(t * batches + batch) * kept + k];
      return { neuron, values };
    });
    return { steps, traces };
  },

  // The spikes in view as CSV (time in ms, layer, neuron), for the raster's CSV button.
  spikesCsv() {
    const { times, senders, dtMs } = view;
    const { length } = view;
    const lines = ["time_ms,layer,neuron"];
    for (let i = 0; i < length; i++) {
      const group = groupOf(senders[i]);
      lines.push(`${times[i] * dtMs},${group?.name ?? ""},${senders[i] - (group?.start ?? 0)}`);
    }
    return lines.join("\r\n") + "\r\n";
  },

  // The first `limit` spikes in view at or after startMs: { timesMs, rows } (for tests and hover).
  spikes({ startMs = 0, limit = 1000 }) {
    const { times, senders, dtMs } = view;
    const { length } = view;
    const from = lowerBound(times, length, startMs / dtMs);
    const to = Math.min(length, from + limit);
    return { timesMs: Array.from(times.subarray(from, to), (t) => t * dtMs), rows: Array.from(senders.subarray(from, to)) };
  },

  // The spikes inside a window, for the SVG export: their times (ms), rows and colours; null when
  // more than MARKS_UP_TO are in it (the raster then shows, and the export embeds, a density image).
  marks(scales) {
    const { times, senders, colors, dtMs } = view;
    const { from, to } = stepsIn(scales);
    const marks = { timesMs: [], rows: [], colors: [] };
    for (let i = from; i < to; i++) {
      if (senders[i] < scales.yMin || senders[i] > scales.yMax) continue;
      if (marks.rows.length === MARKS_UP_TO) return null;
      marks.timesMs.push(times[i] * dtMs);
      marks.rows.push(senders[i]);
      marks.colors.push(colors ? colors[i] : 0);
    }
    return marks;
  },

  // The raster as drawn, for a PNG export.
  image() {
    return canvas ? createImageBitmap(canvas) : null;
  },
};

// The statistics of the view's spikes, computed once per view (the table and its CSV share them).
function statisticsOf(durationMs) {
  view.statistics ??= spikeStatistics(view.times, view.senders, view.neurons, durationMs, view.dtMs);
  return view.statistics;
}

// The index in ``groups`` (ascending starts) of the group holding ``row``.
function groupIndex(groups, row) {
  for (let g = groups.length - 1; g > 0; g--) if (row >= groups[g].start) return g;
  return 0;
}

// The layer a row of the view belongs to (none in the live view).
function groupOf(row) {
  return view.groups[groupIndex(view.groups, row)];
}

// A layer's spikes of one batch entry (all of them in an unbatched result).
function entryOf(layer, batch) {
  if (!layer.batch || layer.batch.every((b) => b === batch)) return { times: layer.times, senders: layer.senders };
  let kept = 0;
  for (const b of layer.batch) if (b === batch) kept++;
  const times = new Int32Array(kept);
  const senders = new Int32Array(kept);
  for (let i = 0, j = 0; i < layer.batch.length; i++) {
    if (layer.batch[i] !== batch) continue;
    times[j] = layer.times[i];
    senders[j++] = layer.senders[i];
  }
  return { times, senders };
}

// Several layers' spikes (each in time order) as one list in time order, rows offset per layer.
function merge(parts, dtMs) {
  if (parts.length === 1 && parts[0].offset === 0) return { times: parts[0].times, senders: parts[0].senders, colors: null, dtMs };
  const total = parts.reduce((n, p) => n + p.times.length, 0);
  const times = new Int32Array(total);
  const senders = new Int32Array(total);
  const colors = new Uint8Array(total);
  const at = parts.map(() => 0);
  for (let k = 0; k < total; k++) {
    let pick = -1;
    for (let p = 0; p < parts.length; p++) {
      if (at[p] < parts[p].times.length && (pick < 0 || parts[p].times[at[p]] < parts[pick].times[at[pick]])) pick = p;
    }
    const part = parts[pick];
    times[k] = part.times[at[pick]];
    senders[k] = part.senders[at[pick]++] + part.offset;
    colors[k] = part.color;
  }
  return { times, senders, colors, dtMs };
}

function lowerBound(sorted, length, value) {
  let lo = 0;
  let hi = length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (sorted[mid] < value) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

// The view's spikes in the time window [xMin, xMax] ms: indices from (inclusive) to (exclusive).
// Times are whole steps: the window holds steps ceil(xMin / dt) to floor(xMax / dt).
function stepsIn({ xMin, xMax }) {
  const { times, dtMs, length } = view;
  return { from: lowerBound(times, length, Math.ceil(xMin / dtMs - 1e-9)), to: lowerBound(times, length, Math.floor(xMax / dtMs + 1e-9) + 1) };
}

// Draws the spikes inside the scales' window: marks when few, a density image when many.
function drawRaster({ xMin, xMax, yMin, yMax, width, height, dpr }) {
  const W = Math.max(1, Math.round(width * dpr));
  const H = Math.max(1, Math.round(height * dpr));
  if (canvas.width !== W || canvas.height !== H) {
    canvas.width = W;
    canvas.height = H;
  }
  ctx.clearRect(0, 0, W, H);
  if (!view) return { mode: "empty", visible: 0 };
  const { times, senders, colors, dtMs } = view;
  const { from, to } = stepsIn({ xMin, xMax });
  const sx = W / (xMax - xMin || 1);
  const sy = H / (yMax - yMin || 1);
  let visible = 0;
  for (let i = from; i < to; i++) if (senders[i] >= yMin && senders[i] <= yMax) visible++;
  if (visible <= MARKS_UP_TO) {
    // a square per spike, its side the distance between two neurons (1 to 3 CSS pixels)
    const mark = Math.max(dpr, Math.min(3 * dpr, sy));
    const paths = COLORS.map(() => new Path2D());
    for (let i = from; i < to; i++) {
      const row = senders[i];
      if (row < yMin || row > yMax) continue;
      const cx = (times[i] * dtMs - xMin) * sx;
      const cy = (yMax - row) * sy;
      paths[colors ? colors[i] : 0].rect(cx - mark / 2, cy - mark / 2, mark, mark);
    }
    paths.forEach((path, c) => {
      ctx.fillStyle = `rgb(${COLORS[c].join(",")})`;
      ctx.fill(path);
    });
    return { mode: "marks", visible };
  }
  // density: spikes counted per cell of a grid no finer than a device pixel or a neuron row
  const columns = W;
  const rows = Math.max(1, Math.min(H, Math.ceil(yMax - yMin)));
  const cells = new Uint32Array(columns * rows);
  const cellColor = colors ? new Uint8Array(columns * rows) : null;
  const cx = columns / (xMax - xMin || 1);
  const cy = rows / (yMax - yMin || 1);
  let most = 0;
  for (let i = from; i < to; i++) {
    const row = senders[i];
    if (row < yMin || row > yMax) continue;
    const c = Math.min(columns - 1, Math.floor((times[i] * dtMs - xMin) * cx));
    const r = Math.min(rows - 1, Math.floor((yMax - row) * cy));
    const cell = r * columns + c;
    const n = ++cells[cell];
    if (n > most) most = n;
    if (cellColor) cellColor[cell] = colors[i];
  }
  const image = new ImageData(columns, rows);
  const pixels = image.data;
  const logMost = Math.log1p(most);
  for (let cell = 0; cell < cells.length; cell++) {
    const n = cells[cell];
    if (!n) continue;
    const [r, g, b] = COLORS[cellColor ? cellColor[cell] : 0];
    const p = cell * 4;
    pixels[p] = r;
    pixels[p + 1] = g;
    pixels[p + 2] = b;
    pixels[p + 3] = Math.round(255 * (0.3 + (0.7 * Math.log1p(n)) / logMost)); // one spike faint, the busiest cell solid
  }
  const grid = new OffscreenCanvas(columns, rows);
  grid.getContext("2d").putImageData(image, 0, 0);
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(grid, 0, 0, W, H);
  return { mode: "density", visible, most };
}

self.onmessage = async ({ data }) => {
  const { id, type, ...payload } = data;
  try {
    const answer = await handlers[type](payload);
    const transfer = [];
    if (answer instanceof ImageBitmap) transfer.push(answer);
    self.postMessage({ id, answer }, transfer);
  } catch (error) {
    self.postMessage({ id, error: { message: error.message, status: error.status } });
  }
};
