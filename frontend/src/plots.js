// The result plots, drawn with uPlot. Time plots share their x range: zoom or pan one, all follow.
import uPlot from "./lib/uPlot.esm.js";

const COLORS = ["#2563eb", "#dc2626", "#16a34a", "#9333ea", "#ea580c", "#0891b2", "#be185d", "#4d7c0f"];
const NO_LINE = { paths: () => null, points: { show: false } }; // a series the raster's own marks draw

// A histogram's series: a bar per bin, left-aligned on its bin's edge.
function bars(label, stroke, fill) {
  return { label, stroke, fill, paths: uPlot.paths.bars({ size: [0.9, 60], align: 1 }), points: { show: false } };
}
// whole-number tick steps: 1, 2, 5, 10, 20, 50, ... up to 5e9
const NEURON_TICKS = Array.from({ length: 30 }, (_, k) => [1, 2, 5][k % 3] * 10 ** Math.floor(k / 3));
const timeLinked = new Set();
let syncing = false;

function followTime(u) {
  timeLinked.add(u);
  return (plot, key) => {
    if (key !== "x" || syncing) return;
    syncing = true;
    const { min, max } = plot.scales.x;
    for (const other of timeLinked) if (other !== plot && other.scales.x) other.setScale("x", { min, max });
    syncing = false;
  };
}

export function destroyAll(plots) {
  for (const plot of plots) {
    timeLinked.delete(plot);
    plot.destroy();
  }
}

export function timeRange() {
  const first = timeLinked.values().next().value;
  return first ? { min: first.scales.x.min, max: first.scales.x.max } : null;
}

export function setTimeRange(min, max) {
  const first = timeLinked.values().next().value;
  if (first) first.setScale("x", { min, max }); // the hook carries it to the others
}

// Time plots start on the whole run and then follow each other. (A scale's `range` option would
// override every later setScale, so the start is set once, after creation.)
const TIME_SCALE = { time: false, auto: false };

// A y axis as wide as its widest tick value needs: uPlot's fixed 50 px let values like "40,000"
// run into the axis's label ("neuron", "intervals"), on screen and in the exported images.
function fittedY(axis) {
  return { ...axis, size: fittedSize };
}

function fittedSize(self, values, axisIndex, cycle) {
  const axis = self.axes[axisIndex];
  if (cycle > 1) return axis._size; // uPlot asks again while the ticks settle: keep the last answer
  self.ctx.font = axis.font[0];
  const widest = Math.max(0, ...(values ?? []).map((value) => self.ctx.measureText(String(value)).width));
  return Math.ceil(axis.ticks.size + axis.gap + widest / (window.devicePixelRatio || 1) + 4);
}

// uPlot's double-click auto-scales x, which a fixed time scale turns into [null, null] (a blank
// plot): on every time plot it resets all of them to the whole run instead.
function timeCursor(durationMs, cursor = {}, onReset = () => {}) {
  const reset = () => (event) => {
    if (event.button !== 0) return null;
    setTimeRange(0, durationMs);
    onReset();
    return null;
  };
  return { ...cursor, bind: { dblclick: reset } };
}

function linkTime(plot, durationMs) {
  plot.setScale("x", { min: 0, max: durationMs });
  plot.hooks.setScale = [followTime(plot)];
  return plot;
}

function size(container, height) {
  return { width: Math.max(280, container.clientWidth - 4), height };
}

function hoverHook(readout, describe) {
  return (u) => {
    const { left, top, idx } = u.cursor;
    readout.textContent = left == null || left < 0 ? "" : describe(u, left, top, idx);
  };
}

// Raster: time on x, neuron on y. The marks are drawn by the result worker into a canvas over
// the plot area (an OffscreenCanvas), so the page never loops over the spikes itself: uPlot draws
// the axes and takes the zooms (drag across time, or down the neurons; double-click resets), and
// each redraw asks the worker for the marks of the new window. `onDrawn` hears of each painted
// frame; the container carries data-drawing while a draw is on its way and data-mode after it.
export function rasterPlot(container, readout, { data, spikes, neurons, durationMs, describe, groups = [], onDrawn = () => {} }) {
  const several = groups.length > 1;
  const marks = document.createElement("canvas");
  marks.className = "raster-marks";
  let wanted = null;
  let drawing = false;
  const drawMarks = async () => {
    container.dataset.drawing = "true";
    while (wanted) {
      const scales = wanted;
      wanted = null;
      try {
        const drawn = await data.call("draw", scales);
        plot.lastDraw = { ...drawn, ...scales };
      } catch {
        break; // the worker has a newer raster: this one is gone
      }
    }
    drawing = false;
    requestAnimationFrame(() => {
      if (drawing) return;
      delete container.dataset.drawing;
      container.dataset.mode = plot.lastDraw?.mode ?? "";
      onDrawn({ ...plot.lastDraw, paintedAt: performance.timeOrigin + performance.now() });
    });
  };
  const redrawMarks = (u) => {
    if (u.scales.x.min == null || u.scales.y.min == null) return;
    const ratio = devicePixelRatio || 1;
    wanted = { xMin: u.scales.x.min, xMax: u.scales.x.max, yMin: u.scales.y.min, yMax: u.scales.y.max, width: u.bbox.width / ratio, height: u.bbox.height / ratio, dpr: ratio };
    if (!drawing) {
      drawing = true;
      queueMicrotask(drawMarks); // both axes set in one go (a zoom of each) make one draw
    }
  };
  let asked = 0;
  const hover = async (u) => {
    const { left, top } = u.cursor;
    if (left == null || left < 0) {
      readout.textContent = "";
      return;
    }
    const question = ++asked;
    const t = u.posToVal(left, "x");
    const row = u.posToVal(top, "y");
    const slackMs = Math.abs(u.posToVal(left + 6, "x") - t);
    const rowSlack = Math.max(1, Math.abs(u.posToVal(top + 6, "y") - row));
    const spike = await data.call("nearest", { t, row, slackMs, rowSlack });
    if (question !== asked) return; // the cursor has moved on
    readout.textContent = spike ? `spike: ${describe(spike.layer, spike.neuron)}, t ${spike.timeMs.toFixed(3)} ms` : `t ${t.toFixed(2)} ms, ${describe(null, Math.round(row))}`;
  };
  const plot = new uPlot(
    {
      ...size(container, 260),
      mode: 2,
      title: "Spike raster",
      // the neuron range exactly as set (uPlot would otherwise widen it to round numbers)
      scales: { x: TIME_SCALE, y: { time: false, auto: false, range: (u, min, max) => [min, max] } },
      axes: [{ label: "time (ms)" }, fittedY({ label: "neuron", incrs: NEURON_TICKS })],
      // several populations: a series each, drawing nothing (the marks are drawn apart) but naming
      // its colour in the legend, on screen and in the exported image
      series: [{}, ...(several ? groups.map((g) => ({ label: g.name, stroke: COLORS[g.color % COLORS.length], ...NO_LINE })) : [{ label: "spikes", ...NO_LINE }])],
      legend: { show: several, live: false },
      // a drag mostly along one axis zooms that axis only
      cursor: timeCursor(durationMs, { drag: { x: true, y: true, uni: 30 }, points: { show: false } }, () => allNeurons()),
      hooks: { setCursor: [hover], draw: [redrawMarks] },
    },
    [null, ...(several ? groups : [null]).map(() => [new Float64Array(0), new Float64Array(0)])],
    container,
  );
  plot.over.append(marks);
  const offscreen = marks.transferControlToOffscreen();
  data.call("canvas", { canvas: offscreen }, [offscreen]);
  const allNeurons = () => plot.setScale("y", { min: -0.5, max: Math.max(neurons, 1) - 0.5 });
  allNeurons();
  plot.neuronRange = { all: allNeurons, neurons };
  plot.marksImage = () => data.call("image");
  plot.spikesCsv = () => data.call("spikesCsv");
  container.dataset.points = String(spikes);
  return linkTime(plot, durationMs);
}

// Population firing rate: spikes per neuron per second, in bins of binMs, one line per layer
// (the result worker counts them). Bin k holds the spikes of [k*binMs, (k+1)*binMs) and is drawn
// over exactly that span (a step from its left edge).
export function psthPlot(container, readout, { edges, rates, names, durationMs, binMs }) {
  const bins = edges.length - 1;
  const describe = (u, l, t, idx) =>
    idx == null || idx >= bins ? "" : `[${edges[idx].toFixed(1)}, ${edges[idx + 1].toFixed(1)}) ms: ` + rates.map((r, g) => `${names[g] ? `${names[g]} ` : ""}${r[idx].toFixed(2)} Hz`).join(", ");
  const series = [{ label: "t (ms)" }];
  rates.forEach((_, g) => {
    const one = rates.length === 1;
    series.push({
      label: names[g] ? `${names[g]} (Hz)` : "rate (Hz)",
      stroke: one ? COLORS[1] : COLORS[g % COLORS.length], // several layers: the raster's colours
      fill: one ? "rgba(220,38,38,0.12)" : undefined,
      paths: uPlot.paths.stepped({ align: 1 }),
    });
  });
  const plot = new uPlot(
    {
      ...size(container, 200),
      title: `Population rate (bin ${binMs} ms)`,
      scales: { x: TIME_SCALE },
      axes: [{ label: "time (ms)" }, fittedY({ label: "rate (Hz)" })],
      series,
      legend: { show: rates.length > 1 },
      cursor: timeCursor(durationMs),
      hooks: { setCursor: [hoverHook(readout, describe)] },
    },
    [edges, ...rates],
    container,
  );
  return linkTime(plot, durationMs);
}

// How many neurons fired how often: a histogram of spike counts over neurons.
export function countHistogram(container, readout, counts) {
  const max = counts.reduce((a, b) => Math.max(a, b), 0);
  const binWidth = Math.max(1, Math.ceil((max + 1) / 40));
  const bins = Math.floor(max / binWidth) + 1;
  const lefts = new Float64Array(bins);
  const numbers = new Float64Array(bins);
  for (let b = 0; b < bins; b++) lefts[b] = b * binWidth;
  for (const c of counts) numbers[Math.floor(c / binWidth)] += 1;
  return new uPlot(
    {
      ...size(container, 200),
      title: "Spike counts across neurons",
      scales: { x: { time: false, range: () => [0, bins * binWidth] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      // whole spikes and whole neurons only
      axes: [{ label: "spikes per neuron", incrs: NEURON_TICKS.map((step) => step * binWidth) }, fittedY({ label: "neurons", incrs: NEURON_TICKS })],
      series: [
        { label: "count" },
        bars("neurons", COLORS[2], "rgba(22,163,74,0.25)"),
      ],
      hooks: { setCursor: [hoverHook(readout, (u, l, t, idx) => (idx == null ? "" : `${lefts[idx]}-${lefts[idx] + binWidth - 1} spikes: ${numbers[idx]} neurons`))] },
    },
    [lefts, numbers],
    container,
  );
}

// A plastic edge's final weights: how many synapses ended in each bin between the rule's bounds.
export function weightHistogram(container, readout, { edges, counts, synapses }) {
  const lefts = edges.slice(0, -1);
  const width = edges[1] - edges[0];
  const digits = Math.max(0, Math.ceil(-Math.log10(width)) + 1);
  return new uPlot(
    {
      ...size(container, 200),
      title: "Final weights",
      scales: { x: { time: false, range: () => [edges[0], edges[edges.length - 1]] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ label: "weight" }, fittedY({ label: "synapses", incrs: NEURON_TICKS })],
      series: [
        { label: "weight" },
        bars("synapses", COLORS[3], "rgba(147,51,234,0.25)"),
      ],
      hooks: {
        setCursor: [
          hoverHook(readout, (u, l, t, idx) =>
            idx == null ? "" : `[${lefts[idx].toFixed(digits)}, ${(lefts[idx] + width).toFixed(digits)}): ${counts[idx]} of ${synapses} synapses`,
          ),
        ],
      },
    },
    [lefts, counts],
    container,
  );
}

// How a plastic edge's weights changed: their mean, and a few synapses (the lowest to the highest
// final weight), at each snapshot and at the end.
export function weightEvolution(container, readout, { timesMs, mean, traces, durationMs }) {
  const series = [{ label: "t (ms)" }, { label: "mean", stroke: "#111", width: 2 }];
  const data = [timesMs, mean];
  traces.forEach((trace, i) => {
    series.push({ label: `synapse ${trace.synapse}`, stroke: COLORS[i % COLORS.length], width: 1 });
    data.push(trace.values);
  });
  const plot = new uPlot(
    {
      ...size(container, 240),
      title: "Weights over time",
      scales: { x: TIME_SCALE },
      axes: [{ label: "time (ms)" }, fittedY({ label: "weight" })],
      series,
      cursor: timeCursor(durationMs),
      hooks: {
        setCursor: [
          hoverHook(readout, (u, l, t, idx) =>
            idx == null ? "" : `at ${timesMs[idx].toFixed(1)} ms: mean ${mean[idx].toPrecision(4)}, ` + traces.map((trace) => `synapse ${trace.synapse} ${trace.values[idx].toPrecision(4)}`).join(", "),
          ),
        ],
      },
    },
    data,
    container,
  );
  return linkTime(plot, durationMs);
}

// Membrane voltage of selected neurons, with the threshold as a dashed line.
export function voltagePlot(container, readout, { timeMs, traces, threshold, durationMs, unit }) {
  const series = [{ label: "t (ms)" }];
  const data = [Float64Array.from(timeMs)];
  traces.forEach((trace, i) => {
    series.push({ label: trace.label ?? `neuron ${trace.neuron}`, stroke: COLORS[i % COLORS.length], width: 1.25 });
    data.push(trace.values);
  });
  if (threshold != null) {
    series.push({ label: "threshold", stroke: "#111", dash: [6, 4], width: 1, points: { show: false } });
    data.push(new Float64Array(timeMs.length).fill(threshold));
  }
  const plot = new uPlot(
    {
      ...size(container, 240),
      title: "Membrane voltage",
      scales: { x: TIME_SCALE },
      axes: [{ label: "time (ms)" }, fittedY({ label: unit ? `v (${unit})` : "v" })],
      series,
      cursor: timeCursor(durationMs),
      hooks: {
        setCursor: [
          hoverHook(readout, (u, l, t, idx) =>
            idx == null ? "" : traces.map((trace) => `${trace.label ?? `neuron ${trace.neuron}`}: ${trace.values[idx].toFixed(4)}`).join(", ") + ` at ${timeMs[idx].toFixed(2)} ms`,
          ),
        ],
      },
    },
    data,
    container,
  );
  return linkTime(plot, durationMs);
}

export function resizeAll(plots, containers) {
  plots.forEach((plot, i) => plot.setSize({ width: Math.max(280, containers[i].clientWidth - 4), height: plot.height }));
}

// A figure for slides and papers: the plot on white (its canvas is transparent, and black axes
// vanish on a dark slide), with its title above, its series' legend below and a caption (what
// was run), at the screen's pixel density and at least twice the CSS size.
export function pngOf(plot, caption = "", marks = null) {
  const source = plot.ctx.canvas;
  const scale = Math.max(1, 2 / (window.devicePixelRatio || 1));
  const title = plot.root.querySelector(".u-title")?.textContent ?? "";
  const legend = plot.series.slice(1).filter((s) => s.show !== false && s.label);
  const ratio = (window.devicePixelRatio || 1) * scale;
  const line = 22 * ratio;
  const canvas = document.createElement("canvas");
  canvas.width = source.width * scale;
  canvas.height = source.height * scale + line * (2 + (legend.length ? 1 : 0));
  const ctx = canvas.getContext("2d");
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  ctx.fillStyle = "#111827";
  ctx.font = `600 ${15 * ratio}px system-ui, sans-serif`;
  ctx.fillText(title, 10 * ratio, line * 0.75);
  ctx.drawImage(source, 0, line, source.width * scale, source.height * scale);
  if (marks) ctx.drawImage(marks, plot.bbox.left * scale, line + plot.bbox.top * scale, plot.bbox.width * scale, plot.bbox.height * scale);
  let y = line + source.height * scale + line * 0.75;
  ctx.font = `${12 * ratio}px system-ui, sans-serif`;
  if (legend.length) {
    let x = 10 * ratio;
    for (const series of legend) {
      const stroke = typeof series.stroke === "function" ? series.stroke(plot, 1) : series.stroke;
      ctx.fillStyle = stroke || "#111827";
      ctx.fillRect(x, y - 9 * ratio, 14 * ratio, 3 * ratio);
      ctx.fillStyle = "#111827";
      ctx.fillText(series.label, x + 18 * ratio, y);
      x += (ctx.measureText(series.label).width + 40 * ratio);
    }
    y += line;
  }
  ctx.fillStyle = "#6b7280";
  ctx.fillText(caption, 10 * ratio, y);
  return canvas.toDataURL("image/png");
}

// A sweep's tuning curve: mean rate against one axis, one line per layer.
export function tuningPlot(container, readout, { xs, lines, xLabel }) {
  const series = [{ label: xLabel }];
  const data = [Float64Array.from(xs)];
  lines.forEach((line, i) => {
    series.push({ label: line.label, stroke: COLORS[i % COLORS.length], width: 1.5, points: { show: true, size: 6 } });
    data.push(Float64Array.from(line.ys, (y) => (y == null ? NaN : y)));
  });
  const plot = new uPlot(
    {
      ...size(container, 240),
      title: "Tuning curve",
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, fittedY({ label: "mean rate (Hz)" })],
      series,
      hooks: {
        setCursor: [
          hoverHook(readout, (u, l, t, idx) =>
            idx == null ? "" : `${xLabel} = ${xs[idx]}: ` + lines.map((line) => `${line.label} ${line.ys[idx] == null ? "–" : line.ys[idx].toFixed(2)} Hz`).join(", "),
          ),
        ],
      },
    },
    data,
    container,
  );
  container.dataset.points = String(xs.length);
  return plot;
}

// A value per cell of a two-axis grid, coloured from low (dark) to high (light), with the scale
// and the axis values written out; a click on a cell calls onPick(column, row).
const HEAT = ["#1e1b4b", "#3730a3", "#2563eb", "#0891b2", "#16a34a", "#ca8a04", "#f59e0b", "#fde68a"];

export function heatMap(container, readout, { columns, rows, values, xLabel, yLabel, unit, onPick }) {
  const canvas = document.createElement("canvas");
  const width = Math.max(280, container.clientWidth - 4);
  const height = Math.min(420, 60 + 36 * rows.length);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = width * ratio;
  canvas.height = height * ratio;
  canvas.style.width = `${width}px`;
  canvas.style.height = `${height}px`;
  canvas.setAttribute("role", "img");
  canvas.setAttribute("aria-label", `Heat map of ${unit} over ${xLabel} and ${yLabel}`);
  container.replaceChildren(canvas);
  const ctx = canvas.getContext("2d");
  ctx.scale(ratio, ratio);
  const finite = values.flat().filter((v) => v != null && Number.isFinite(v));
  const lo = finite.length ? Math.min(...finite) : 0;
  const hi = finite.length ? Math.max(...finite) : 1;
  const colour = (v) => (v == null || !Number.isFinite(v) ? "#e5e7eb" : HEAT[Math.min(HEAT.length - 1, Math.floor(((v - lo) / (hi - lo || 1)) * HEAT.length))]);
  const box = { left: 110, top: 26, right: width - 70, bottom: height - 34 };
  const cw = (box.right - box.left) / columns.length;
  const ch = (box.bottom - box.top) / rows.length;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#111827";
  ctx.fillText(`${unit} over ${xLabel} (across) and ${yLabel} (down)`, box.left, 16);
  rows.forEach((row, j) => {
    ctx.fillStyle = "#111827";
    ctx.textAlign = "right";
    ctx.fillText(String(row), box.left - 6, box.top + (j + 0.5) * ch + 4);
    columns.forEach((column, i) => {
      ctx.fillStyle = colour(values[j][i]);
      ctx.fillRect(box.left + i * cw + 1, box.top + j * ch + 1, cw - 2, ch - 2);
    });
  });
  ctx.textAlign = "center";
  ctx.fillStyle = "#111827";
  columns.forEach((column, i) => ctx.fillText(String(column), box.left + (i + 0.5) * cw, box.bottom + 16));
  ctx.textAlign = "left";
  HEAT.forEach((c, k) => {
    ctx.fillStyle = c;
    ctx.fillRect(box.right + 14, box.bottom - ((k + 1) * (box.bottom - box.top)) / HEAT.length, 14, (box.bottom - box.top) / HEAT.length);
  });
  ctx.fillStyle = "#111827";
  ctx.fillText(hi.toPrecision(3), box.right + 32, box.top + 10);
  ctx.fillText(lo.toPrecision(3), box.right + 32, box.bottom);
  const cellAt = (event) => {
    const bounds = canvas.getBoundingClientRect();
    const i = Math.floor((event.clientX - bounds.left - box.left) / cw);
    const j = Math.floor((event.clientY - bounds.top - box.top) / ch);
    return i >= 0 && i < columns.length && j >= 0 && j < rows.length ? [i, j] : null;
  };
  canvas.addEventListener("mousemove", (event) => {
    const cell = cellAt(event);
    readout.textContent = cell ? `${xLabel} = ${columns[cell[0]]}, ${yLabel} = ${rows[cell[1]]}: ${values[cell[1]][cell[0]] == null ? "–" : values[cell[1]][cell[0]].toFixed(3)} ${unit} (click to open)` : "";
  });
  canvas.addEventListener("click", (event) => {
    const cell = cellAt(event);
    if (cell) onPick(cell[0], cell[1]);
  });
  container.dataset.cells = String(columns.length * rows.length);
  return { canvas, box, cw, ch };
}

// Inter-spike intervals of all neurons together: a histogram over 40 bins up to the longest
// (counted by the result worker).
export function isiHistogram(container, readout, { isi, intervals, meanCv, withCv }) {
  const { lefts, numbers, width } = isi;
  const bins = lefts.length;
  const cv = meanCv == null ? "no neuron has two intervals" : `mean CV ${meanCv.toFixed(3)} over ${withCv} neurons`;
  const plot = new uPlot(
    {
      ...size(container, 200),
      title: `Inter-spike intervals (${intervals.toLocaleString()}; ${cv})`,
      scales: { x: { time: false, range: () => [0, bins * width] }, y: { range: (u, min, max) => [0, Math.max(1, max)] } },
      axes: [{ label: "interval (ms)" }, fittedY({ label: "intervals", incrs: NEURON_TICKS })],
      series: [
        { label: "ISI (ms)" },
        bars("intervals", COLORS[3], "rgba(147,51,234,0.25)"),
      ],
      hooks: { setCursor: [hoverHook(readout, (u, l, t, idx) => (idx == null ? "" : `[${lefts[idx].toFixed(2)}, ${(lefts[idx] + width).toFixed(2)}) ms: ${numbers[idx]} intervals`))] },
    },
    [lefts, numbers],
    container,
  );
  container.dataset.points = String(intervals);
  return plot;
}

// A plot's series as CSV: its x values and one column per series, as drawn.
export function seriesCsv(plot) {
  const columns = plot.data.map((values, i) => ({ label: plot.series[i].label ?? `series ${i}`, values }));
  const quote = (text) => (/[",\r\n]/.test(text) ? `"${text.replaceAll('"', '""')}"` : text);
  const lines = [columns.map((c) => quote(String(c.label))).join(",")];
  for (let row = 0; row < columns[0].values.length; row++) lines.push(columns.map((c) => (Number.isFinite(c.values[row]) ? String(c.values[row]) : "")).join(","));
  return lines.join("\r\n") + "\r\n";
}

// The raster's neuron axis: "in" halves the neurons shown around the middle, "out" doubles them
// (never past all), "all" shows every neuron again.
export function zoomNeurons(raster, kind) {
  const { all, neurons } = raster.neuronRange;
  if (kind === "all") return all();
  const { min, max } = raster.scales.y;
  const middle = (min + max) / 2;
  const half = kind === "in" ? Math.max(2, (max - min) / 4) : (max - min);
  const low = Math.max(-0.5, middle - half);
  const high = Math.min(neurons - 0.5, middle + half);
  raster.setScale("y", { min: low, max: Math.max(high, low + 1) });
}
