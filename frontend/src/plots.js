// The result plots, drawn with uPlot. Time plots share their x range: zoom or pan one, all follow.
import { COLORS, rgbOf } from "./colors.js";
import uPlot from "./lib/uPlot.esm.js";

const NO_LINE = { paths: () => null, points: { show: false } }; // a series the raster's own marks draw

// A histogram's series: a bar per bin, left-aligned on its bin's edge.
// (``drawn`` tells the SVG export how a series is drawn: "bars", "steps", or a line by default.)
function bars(label, stroke, fill) {
  return { label, stroke, fill, paths: uPlot.paths.bars({ size: [0.9, 60], align: 1 }), points: { show: false }, drawn: "bars" };
}
const STEPS = { paths: uPlot.paths.stepped({ align: 1 }), drawn: "steps" }; // each value held until the next x
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

// A new time plot starts on the range the others show (the whole run if it is the first): its
// first scale reaches the others through the hook, so starting it on the whole run would undo a
// zoom made while the later plots of a result were still coming.
function linkTime(plot, durationMs) {
  plot.setScale("x", timeRange() ?? { min: 0, max: durationMs });
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
      ...STEPS,
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
const HEAT_RGB = HEAT.map(rgbOf);

// A value's colour on the heat scale, continuous: t in [0, 1] between the stops of HEAT.
export function heatColour(t) {
  const position = Math.min(1, Math.max(0, t)) * (HEAT_RGB.length - 1);
  const below = Math.min(HEAT_RGB.length - 2, Math.floor(position));
  const part = position - below;
  const [r, g, b] = HEAT_RGB[below].map((value, k) => Math.round(value + (HEAT_RGB[below + 1][k] - value) * part));
  return { css: `rgb(${r},${g},${b})`, light: 0.2126 * r + 0.7152 * g + 0.0722 * b > 140 };
}

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
  const colour = (v) => (v == null || !Number.isFinite(v) ? { css: "#e5e7eb", light: true } : heatColour((v - lo) / (hi - lo || 1)));
  const box = { left: 110, top: 26, right: width - 70, bottom: height - 34 };
  const cw = (box.right - box.left) / columns.length;
  const ch = (box.bottom - box.top) / rows.length;
  ctx.font = "12px system-ui, sans-serif";
  ctx.fillStyle = "#111827";
  ctx.fillText(`${unit} over ${xLabel} (across) and ${yLabel} (down)`, box.left, 16);
  const cells = []; // what each cell shows: its value, the text written in it (if it fits), its fill
  const written = cw >= 44 && ch >= 18;
  rows.forEach((row, j) => {
    ctx.fillStyle = "#111827";
    ctx.textAlign = "right";
    ctx.fillText(String(row), box.left - 6, box.top + (j + 0.5) * ch + 4);
    columns.forEach((column, i) => {
      const value = values[j][i];
      const fill = colour(value);
      ctx.fillStyle = fill.css;
      ctx.fillRect(box.left + i * cw + 1, box.top + j * ch + 1, cw - 2, ch - 2);
      const text = written ? (value == null || !Number.isFinite(value) ? "–" : value.toPrecision(3)) : null;
      if (text) {
        ctx.textAlign = "center";
        ctx.fillStyle = fill.light ? "#111827" : "#fff";
        ctx.fillText(text, box.left + (i + 0.5) * cw, box.top + (j + 0.5) * ch + 4);
      }
      cells.push({ column: i, row: j, value, text, fill: fill.css });
    });
  });
  ctx.textAlign = "center";
  ctx.fillStyle = "#111827";
  columns.forEach((column, i) => ctx.fillText(String(column), box.left + (i + 0.5) * cw, box.bottom + 16));
  ctx.textAlign = "left";
  const strips = 64; // the scale as a gradient, low at the bottom
  for (let k = 0; k < strips; k++) {
    ctx.fillStyle = heatColour((k + 0.5) / strips).css;
    ctx.fillRect(box.right + 14, box.bottom - ((k + 1) * (box.bottom - box.top)) / strips, 14, (box.bottom - box.top) / strips + 0.5);
  }
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
  return { canvas, box, cw, ch, cells, lo, hi };
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

// --- per population -----------------------------------------------------------------------------

// A line per population over a shared x axis (frequency, lag, a histogram's bins), in the
// raster's colours (``colors``: each population's index there), with a legend naming them.
function populationLines(container, readout, { title, xs, ys, names, colors, xLabel, yLabel, stepped = false, format }) {
  const series = [{ label: xLabel }];
  ys.forEach((_, k) => {
    series.push({
      label: names[k] ?? yLabel,
      stroke: COLORS[colors[k] % COLORS.length],
      width: 1.5,
      points: { show: false },
      ...(stepped ? STEPS : {}),
    });
  });
  const describe = (u, l, t, idx) => (idx == null || idx >= xs.length ? "" : `${format.x(xs[idx], idx)}: ` + ys.map((y, k) => `${names[k] ?? ""} ${format.y(y[idx])}`.trim()).join(", "));
  return new uPlot(
    {
      ...size(container, 200),
      title,
      scales: { x: { time: false } },
      axes: [{ label: xLabel }, fittedY({ label: yLabel })],
      series,
      legend: { show: true },
      hooks: { setCursor: [hoverHook(readout, describe)] },
    },
    [xs, ...ys],
    container,
  );
}

// The power spectral density of each population's rate.
export function spectrumPlot(container, readout, { frequencies, powers, names, colors, binMs }) {
  return populationLines(container, readout, {
    title: `Power spectrum of the population rate (bin ${binMs} ms, up to ${(500 / binMs).toFixed(0)} Hz)`,
    xs: frequencies, ys: powers, names, colors, xLabel: "frequency (Hz)", yLabel: "power (Hz²/Hz)",
    format: { x: (f) => `${f.toFixed(2)} Hz`, y: (p) => p.toPrecision(3) },
  });
}

// The autocorrelation of each population's rate.
export function autocorrelationPlot(container, readout, { lagsMs, correlations, names, colors, binMs }) {
  return populationLines(container, readout, {
    title: `Autocorrelation of the population rate (bin ${binMs} ms)`,
    xs: lagsMs, ys: correlations, names, colors, xLabel: "lag (ms)", yLabel: "correlation",
    format: { x: (lag) => `${lag.toFixed(2)} ms`, y: (r) => r.toFixed(3) },
  });
}

// Each population's histogram of a quantity (intervals, CVs), as shares on shared bins.
export function populationHistogram(container, readout, { edges, shares, names, colors, title, xLabel, what }) {
  return populationLines(container, readout, {
    title, xs: edges, ys: shares, names, colors, xLabel, yLabel: `share of ${what}`, stepped: true,
    format: { x: (left, idx) => (idx + 1 < edges.length ? `[${left.toFixed(2)}, ${edges[idx + 1].toFixed(2)})` : ""), y: (s) => `${(100 * s).toFixed(1)} %` },
  });
}

// --- SVG -----------------------------------------------------------------------------------------

const escapeXml = (text) => String(text).replace(/[<>&"]/g, (c) => ({ "<": "&lt;", ">": "&gt;", "&": "&amp;", '"': "&quot;" })[c]);
const strokeOf = (plot, series) => (typeof series.stroke === "function" ? series.stroke(plot, 1) : series.stroke) || "#111827";
const fillOf = (plot, series) => (typeof series.fill === "function" ? series.fill(plot, 1) : series.fill) || "none";

// The plot as an SVG document drawn from its data, for a paper: title, axes with the ticks on
// screen, each series as vector shapes (lines, steps, bars; the raster's spikes as a square each,
// ``marks`` = {timesMs, rows, colors}, or, in a density view, ``image``, its bitmap), the legend
// and ``caption``. Sizes in CSS pixels, text in system-ui.
export function svgOf(plot, caption = "", { marks = null, image = null } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const line = 22;
  const box = { left: plot.bbox.left / ratio, top: plot.bbox.top / ratio + line, width: plot.bbox.width / ratio, height: plot.bbox.height / ratio };
  const legend = plot.series.slice(1).filter((s) => s.show !== false && s.label);
  const width = plot.width;
  const height = plot.height + line * (2 + (legend.length ? 1 : 0));
  const xScale = plot.axes[0].scale ?? "x";
  const X = (value) => box.left + plot.valToPos(value, xScale);
  const Y = (value, scale = "y") => box.top + plot.valToPos(value, scale);
  const out = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif">`,
    `<rect width="100%" height="100%" fill="#fff"/>`,
    `<text x="10" y="${line * 0.75}" font-size="15" font-weight="600" fill="#111827">${escapeXml(plot.root.querySelector(".u-title")?.textContent ?? "")}</text>`,
    `<defs><clipPath id="area"><rect x="${box.left}" y="${box.top}" width="${box.width}" height="${box.height}"/></clipPath></defs>`,
  ];
  for (const axis of plot.axes) {
    if (axis.show === false || !axis._splits) continue;
    const horizontal = axis.side % 2 === 0;
    const group = [`<g class="axis" data-axis="${horizontal ? "x" : "y"}" font-size="11" fill="#111827">`];
    axis._splits.forEach((split, k) => {
      const text = axis._values?.[k];
      if (text == null || split == null) return;
      if (horizontal) {
        const x = X(split);
        group.push(`<line x1="${x}" y1="${box.top}" x2="${x}" y2="${box.top + box.height}" stroke="#e5e7eb"/>`);
        group.push(`<text x="${x}" y="${box.top + box.height + 16}" text-anchor="middle">${escapeXml(text)}</text>`);
      } else {
        const y = Y(split, axis.scale);
        group.push(`<line x1="${box.left}" y1="${y}" x2="${box.left + box.width}" y2="${y}" stroke="#e5e7eb"/>`);
        group.push(`<text x="${box.left - 6}" y="${y + 4}" text-anchor="end">${escapeXml(text)}</text>`);
      }
    });
    if (axis.label) {
      const label = escapeXml(axis.label);
      group.push(horizontal
        ? `<text class="label" x="${box.left + box.width / 2}" y="${box.top + box.height + 34}" text-anchor="middle" font-weight="600">${label}</text>`
        : `<text class="label" transform="translate(14 ${box.top + box.height / 2}) rotate(-90)" text-anchor="middle" font-weight="600">${label}</text>`);
    }
    out.push(...group, "</g>");
  }
  out.push(`<rect x="${box.left}" y="${box.top}" width="${box.width}" height="${box.height}" fill="none" stroke="#d1d5db"/>`);
  out.push(`<g clip-path="url(#area)">`);
  if (image) out.push(`<image x="${box.left}" y="${box.top}" width="${box.width}" height="${box.height}" preserveAspectRatio="none" href="${image}"/>`);
  if (marks) {
    const side = Math.max(1, Math.min(3, box.height / Math.max(1, plot.scales.y.max - plot.scales.y.min)));
    const byColor = new Map();
    marks.timesMs.forEach((t, i) => {
      const color = marks.colors ? marks.colors[i] : 0;
      if (!byColor.has(color)) byColor.set(color, []);
      byColor.get(color).push(`M${(X(t) - side / 2).toFixed(2)} ${(Y(marks.rows[i]) - side / 2).toFixed(2)}h${side.toFixed(2)}v${side.toFixed(2)}h${(-side).toFixed(2)}z`);
    });
    for (const [color, squares] of byColor) out.push(`<path class="spikes" data-spikes="${squares.length}" fill="${COLORS[color % COLORS.length]}" d="${squares.join("")}"/>`);
  }
  const xs = plot.data[0];
  plot.series.forEach((series, i) => {
    if (i === 0 || series.show === false || !xs || !plot.data[i] || !plot.data[i].length) return;
    const ys = plot.data[i];
    const scale = series.scale ?? "y";
    const stroke = strokeOf(plot, series);
    const points = [];
    for (let k = 0; k < ys.length; k++) if (Number.isFinite(ys[k])) points.push([k, X(xs[k]), Y(ys[k], scale)]);
    if (series.drawn === "bars") {
      const base = Y(Math.max(plot.scales[scale].min, 0), scale);
      const rects = points.map(([k, x, y]) => {
        const right = k + 1 < xs.length ? X(xs[k + 1]) : x + (points.length > 1 ? points[1][1] - points[0][1] : 4);
        const w = Math.max(0.5, (right - x) * 0.9);
        return `M${x.toFixed(2)} ${base.toFixed(2)}V${y.toFixed(2)}h${w.toFixed(2)}V${base.toFixed(2)}z`;
      });
      out.push(`<path class="series" data-series="${i}" data-points="${points.length}" fill="${fillOf(plot, series)}" stroke="${stroke}" d="${rects.join("")}"/>`);
      return;
    }
    const d = points.map(([, x, y], n) => {
      if (n === 0) return `M${x.toFixed(2)} ${y.toFixed(2)}`;
      return series.drawn === "steps" ? `H${x.toFixed(2)}V${y.toFixed(2)}` : `L${x.toFixed(2)} ${y.toFixed(2)}`;
    });
    out.push(`<path class="series" data-series="${i}" data-points="${points.length}" fill="none" stroke="${stroke}" stroke-width="1.5" d="${d.join("")}"/>`);
  });
  out.push("</g>");
  let y = line + plot.height + line * 0.75;
  if (legend.length) {
    let x = 10;
    for (const series of legend) {
      out.push(`<rect x="${x}" y="${y - 9}" width="14" height="3" fill="${strokeOf(plot, series)}"/><text x="${x + 18}" y="${y}" font-size="12" fill="#111827">${escapeXml(series.label)}</text>`);
      x += 18 + 7 * String(series.label).length + 22;
    }
    y += line;
  }
  out.push(`<text x="10" y="${y}" font-size="12" fill="#6b7280">${escapeXml(caption)}</text>`, "</svg>");
  return out.join("\n");
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
