// The viewer: edit a request, submit it, follow it live, and look at what the network did.
import { ApiError, api, apiKey, followEvents, setApiKey } from "./api.js";
import { COLORS } from "./colors.js";
import { drawNetwork } from "./diagram.js";
import { formatLoc, formatSeconds } from "./format.js";
import { createEditor } from "./lib/editor.js";
import { matplotlibScript } from "./matplotlib.js";
import { formFields } from "./request-form.js";
import {
  autocorrelationPlot,
  countHistogram,
  destroyAll,
  isiHistogram,
  pngOf,
  populationHistogram,
  psthPlot,
  rasterPlot,
  resizeAll,
  seriesCsv,
  setTimeRange,
  spectrumPlot,
  svgOf,
  timeRange,
  voltagePlot,
  weightEvolution,
  weightHistogram,
  zoomNeurons,
} from "./plots.js";
import { MARKS_UP_TO, ResultData } from "./result-data.js";
import { STAT_COLUMNS } from "./stats.js";
import { cancelSweep, downloadSummary, followSweep, loadSweeps, rerender as rerenderSweep } from "./sweep.js";

const $ = (selector) => document.querySelector(selector);
// Each neuron model's default threshold and voltage unit ("": Norse's dimensionless units), from the
// server's model registry (/openapi.json's x-neuron-models); until it arrives, none.
const models = { threshold: {}, unit: {} };
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

const LIVE_REDRAW_MS = 300; // the live raster is redrawn at most this often
const state = {
  examples: {}, nir: null, job: null, follow: null, result: null, request: null, network: null, live: null, plots: [], containers: [],
  data: new ResultData(), // the result's spikes live in a worker (result-worker.js), never on this thread
  renders: 0, // counts full redraws, so an old one that is still waiting for the worker gives up
  plan: null, // the submitted job's /validate answer (its layers' shapes size the live raster)
  drawn: null, // the raster's latest painted frame (for the browser tests' timings)
  arrival: null, // when the result's bytes arrived in the worker, and how many
  renderedAt: null, // when the latest full render had every plot in the page
};
window.spikeserveViewer = state; // for debugging in the console, and for the browser tests

// --- small helpers ------------------------------------------------------------------------------

function showError(error) {
  const box = $("#error");
  if (!error) {
    box.hidden = true;
    box.textContent = "";
    return;
  }
  box.hidden = false;
  box.textContent = error instanceof ApiError && typeof error.detail === "string" ? `${error.detail} (HTTP ${error.status})` : String(error.message || error);
}

// Errors of the request: in the list below the editor, each with its line, and on that line in the
// editor itself (the schema's own errors are there already, as the user types).
function showValidation(errors, message) {
  const box = $("#validation");
  box.replaceChildren();
  const lines = state.editor.showServerErrors(errors?.filter((error) => error.loc.length || !error.msg.startsWith("not valid JSON")) ?? []);
  if (message) {
    const ok = document.createElement("p");
    ok.className = "ok";
    ok.textContent = message;
    box.append(ok);
  }
  if (errors?.length) {
    const list = document.createElement("ul");
    list.setAttribute("aria-label", "Validation errors");
    errors.forEach((error, i) => {
      const item = document.createElement("li");
      const path = document.createElement("code");
      path.textContent = formatLoc(error.loc) || "request";
      item.append(path, `: ${error.msg}`);
      if (lines[i] !== undefined && error.loc.length) item.append(Object.assign(document.createElement("span"), { className: "note", textContent: ` (line ${lines[i]})` }));
      list.append(item);
    });
    box.append(list);
  }
}

// A note under a control that explains how its value was read (empty: none).
function showFieldNote(selector, text) {
  const note = $(selector);
  note.textContent = text;
  note.hidden = !text;
}

function setStatus(text, progress) {
  $("#job-status").textContent = text;
  const bar = $("#progress");
  bar.hidden = !progress;
  if (progress) {
    bar.max = Math.max(progress.steps_total, 1);
    bar.value = progress.steps_done;
  }
}

function download(name, blob) {
  const link = document.createElement("a");
  link.href = URL.createObjectURL(blob);
  link.download = name;
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(link.href), 10_000);
}

// --- the request ----------------------------------------------------------------------------------

function requestBody() {
  let body;
  try {
    body = JSON.parse(state.editor.getText());
  } catch (error) {
    showValidation([{ loc: [], msg: `not valid JSON: ${error.message}` }]);
    return null;
  }
  if (state.nir && body && typeof body === "object") body.network = { nir: state.nir.base64 };
  return body;
}

async function validate() {
  const body = requestBody();
  if (!body) return false;
  try {
    if (isSweep(body)) {
      const sweep = await api("/sweeps/validate", { method: "POST", body });
      const runs = sweep.batches < sweep.points ? ` in ${sweep.batches.toLocaleString()} batched runs` : "";
      showValidation([], `Valid sweep: ${sweep.points.toLocaleString()} points${runs}, ${sweep.steps.toLocaleString()} steps in all.`);
      return true;
    }
    const plan = await api("/validate", { method: "POST", body });
    const network = plan.synapses == null
      ? `${plan.layers.length} layers`
      : `a graph of ${plan.layers.length} populations (${plan.layers.map((layer) => layer.name).join(", ")}), ${plan.synapses.toLocaleString()} synapses`;
    showValidation([], `Valid: ${network}, ${plan.neurons.toLocaleString()} neurons, ${plan.steps.toLocaleString()} steps.`);
    return true;
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) showValidation(error.detail);
    else showError(error);
    return false;
  }
}

async function loadExamples() {
  try {
    state.examples = await api("/examples");
  } catch (error) {
    showError(error);
    return;
  }
  const select = $("#examples");
  for (const name of Object.keys(state.examples)) {
    const option = document.createElement("option");
    option.value = name;
    option.textContent = name.replaceAll("_", " ");
    select.append(option);
  }
  const first = Object.keys(state.examples)[0]; // the server lists the one a newcomer should meet first
  if (!state.editor.getText().trim() && first) {
    select.value = first; // a first visit starts from a request that runs and spikes, not an empty box
    pickExample();
  }
}

function pickExample() {
  const name = $("#examples").value;
  if (!name) return;
  const text = JSON.stringify(state.examples[name], null, 2);
  state.editor.setText(text);
  // a whole new request: its schema and form at once, not after the typing pause (a form of the
  // previous request, still on screen, would write into this one)
  clearTimeout(requestChanged);
  matchSchema(text);
  renderForm();
  clearNir();
  showValidation([]);
}

async function loadNir(event) {
  const file = event.target.files[0];
  if (!file) return;
  const bytes = new Uint8Array(await file.arrayBuffer());
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  state.nir = { name: file.name, base64: btoa(binary) };
  const note = $("#nir-note");
  note.hidden = false;
  note.textContent = `Network from ${file.name} (${(bytes.length / 1024).toFixed(1)} KiB) replaces the editor's "network". `;
  const remove = document.createElement("button");
  remove.type = "button";
  remove.textContent = "Remove";
  remove.addEventListener("click", clearNir);
  note.append(remove);
  await validate();
}

function clearNir() {
  state.nir = null;
  $("#nir-file").value = "";
  $("#nir-note").hidden = true;
}

// --- jobs ---------------------------------------------------------------------------------------

function isSweep(body) {
  return body && typeof body === "object" && "base" in body && "axes" in body;
}

async function submitSweep(body) {
  let created;
  try {
    created = await api("/sweeps", { method: "POST", body });
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) showValidation(error.detail);
    else showError(error);
    return;
  }
  showValidation([], `Submitted a sweep of ${created.points} points.`);
  openSweep(created.id);
}

function openSweep(id) {
  setAddress("sweep", id);
  followSweep(id, (jobId) => openResult(jobId).then(() => $("#result-panel").scrollIntoView({ block: "start" })))
    .catch(showError)
    .finally(() => loadSweeps(openSweep));
  loadSweeps(openSweep);
}

async function submit() {
  showError(null);
  const body = requestBody();
  if (!body) return;
  if (isSweep(body)) return submitSweep(body);
  let created;
  try {
    // Watch the first recorded layer while the job runs, unless the request names its own.
    const plan = await api("/validate", { method: "POST", body });
    if (body.record?.live === undefined && plan.record_spikes.length) body.record = { ...body.record, live: plan.record_spikes.slice(0, 1) };
    created = await api("/jobs", { method: "POST", body });
    state.plan = { ...plan, id: created.id, name: body.name ?? null };
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) showValidation(error.detail);
    else showError(error);
    return;
  }
  showValidation([], "Submitted.");
  follow(created.id);
  loadJobs();
}

// The job or sweep on screen is in the address (#/jobs/ID, #/sweeps/ID): a reload or a shared
// link opens it again. (#job=ID and #sweep=ID, the first form, still open.)
function setAddress(kind, id) {
  const hash = `#/${kind}s/${id}`;
  if (location.hash !== hash) history.replaceState(null, "", hash);
}

async function openAddress() {
  const match = /^#\/(job|sweep)s\/([0-9a-f]{32})$/.exec(location.hash) ?? /^#(job|sweep)=([0-9a-f]{32})$/.exec(location.hash);
  if (!match) return;
  const [, kind, id] = match;
  if (kind === "sweep") return openSweep(id);
  try {
    const job = await api(`/jobs/${id}`);
    if (job.status === "succeeded") await openResult(id);
    else if (FINAL.has(job.status)) showJob(job);
    else follow(id);
  } catch (error) {
    showError(error);
  }
}

async function follow(jobId) {
  state.follow?.abort();
  const controller = new AbortController();
  state.follow = controller;
  state.job = jobId;
  setAddress("job", jobId);
  state.result = null;
  state.live = null;
  clearPlots(); // the previous job's plots do not stay under this one
  showResultPanel(false);
  $("#cancel").disabled = false;
  const label = jobLabel({ id: jobId, name: state.plan?.id === jobId ? state.plan.name : null });
  setStatus(`${label}: queued`, { steps_done: 0, steps_total: 1 });
  let last = null;
  let running = null; // when the job was first seen running, and its steps then: the ETA's start
  const ticker = setInterval(() => last && showProgress(last), 1000);
  const showProgress = (event) => {
    const percent = event.steps_total ? Math.floor((100 * event.steps_done) / event.steps_total) : 0;
    let timing = "";
    if (event.status === "running" && running) {
      const seconds = (performance.now() - running.at) / 1000;
      const done = event.steps_done - running.steps;
      const left = done > 0 ? ((event.steps_total - event.steps_done) * seconds) / done : null;
      timing = `; running ${seconds.toFixed(0)} s${left != null ? `, about ${formatSeconds(left)} left` : ""}`;
    }
    setStatus(`${label}: ${event.status}, ${event.steps_done.toLocaleString()} of ${event.steps_total.toLocaleString()} steps (${percent}%)${timing}`, event);
  };
  try {
    const onStatus = (event) => {
      last = event;
      if (event.status === "running" && !running) running = { at: performance.now(), steps: event.steps_done };
      showProgress(event);
    };
    await followEvents(jobId, onStatus, controller.signal, (chunk) => addLiveChunk(jobId, chunk));
  } catch (error) {
    if (error.name !== "AbortError") showError(error);
  } finally {
    clearInterval(ticker);
  }
  if (state.follow !== controller || controller.signal.aborted) return;
  $("#cancel").disabled = true;
  const status = await api(`/jobs/${jobId}`).catch(() => null);
  const final = status?.status ?? last?.status;
  if (final === "succeeded") {
    setStatus(`${jobLabel(status)}: succeeded on ${status.device} in ${formatSeconds(status.wall_s)}`, null);
    await openResult(jobId);
    $("#result-panel").scrollIntoView({ block: "start" });
  } else if (final) {
    setStatus(`${jobLabel(status ?? { id: jobId })}: ${final}${status?.error ? ` — ${status.error}` : ""}`, null);
    const live = state.live?.jobId === jobId ? state.live : null;
    if (live) {
      // what streamed before the end stays on screen, said to be all there is: no result was kept
      clearTimeout(live.timer);
      drawLive(live);
      state.live = null;
      $("#summary").textContent = `${final[0].toUpperCase()}${final.slice(1)} after ${live.stop.toLocaleString()} of ${live.steps.toLocaleString()} steps: the spikes of layer ${live.layer} that streamed until then (${live.count.toLocaleString()}, batch entry 0). A job that did not succeed keeps no result to download.`;
    }
  }
  loadJobs();
}

function jobLabel(job) {
  return job.name ? `Job “${job.name}”` : `Job ${job.id.slice(0, 8)}`;
}

// --- per-neuron statistics ----------------------------------------------------------------------

const STATS_SHOWN = 100; // rows in the page; the CSV has every neuron

function statisticsTable(columns, layerName, describe, durationMs) {
  const wrapper = document.createElement("div");
  wrapper.className = "plot";
  wrapper.dataset.plot = "statistics";
  const head = document.createElement("div");
  head.className = "toolbar";
  const caption = Object.assign(document.createElement("span"), { className: "note" });
  const csv = Object.assign(document.createElement("button"), { type: "button", textContent: "Statistics CSV" });
  csv.addEventListener("click", async () => download(fileName("statistics", "csv"), new Blob([await state.data.call("statisticsCsv", { durationMs })], { type: "text/csv" })));
  head.append(caption, csv);
  const table = document.createElement("table");
  table.className = "points";
  table.setAttribute("aria-label", `Per-neuron statistics of layer ${layerName}`);
  const order = { key: "neuron", descending: false };
  const neurons = columns.neuron.length;
  const format = { neuron: (n) => describe(null, n, true), count: String, rate: (v) => v.toFixed(2), meanIsi: (v) => v.toFixed(3), cv: (v) => v.toFixed(3) };
  const draw = () => {
    const values = columns[order.key];
    const sign = order.descending ? -1 : 1;
    // the neurons by the chosen column (missing values last), ties by neuron
    const sorted = Int32Array.from({ length: neurons }, (_, n) => n).sort((a, b) => {
      const x = Number.isNaN(values[a]) ? -Infinity : values[a];
      const y = Number.isNaN(values[b]) ? -Infinity : values[b];
      return (x - y) * sign || a - b;
    });
    const header = document.createElement("tr");
    for (const column of STAT_COLUMNS) {
      const th = Object.assign(document.createElement("th"), { scope: "col" });
      const sort = Object.assign(document.createElement("button"), { type: "button", className: "sort", textContent: column.label });
      sort.dataset.key = column.key;
      th.setAttribute("aria-sort", order.key === column.key ? (order.descending ? "descending" : "ascending") : "none");
      sort.addEventListener("click", () => {
        order.descending = order.key === column.key ? !order.descending : column.key !== "neuron";
        order.key = column.key;
        draw();
      });
      th.append(sort);
      header.append(th);
    }
    const body = document.createElement("tbody");
    for (const n of sorted.subarray(0, STATS_SHOWN)) {
      const tr = body.insertRow();
      for (const column of STAT_COLUMNS) {
        const value = columns[column.key][n];
        tr.insertCell().textContent = Number.isNaN(value) ? "–" : format[column.key](value);
      }
    }
    table.replaceChildren(document.createElement("thead"), body);
    table.tHead.append(header);
    caption.textContent = neurons > STATS_SHOWN ? `${STATS_SHOWN} of ${neurons} neurons shown (sorted by ${order.key}); the CSV has all.` : `${neurons} neurons.`;
  };
  draw();
  wrapper.append(head, table);
  $("#plots").append(wrapper);
}

// --- populations --------------------------------------------------------------------------------

const FANO_WINDOW_MS = 100; // the Fano factor's counting window (shorter runs: a tenth of the run)
const MAX_LAG_MS = 200; // the autocorrelation's longest lag

// The oscillation plots' bin: the fewest whole steps that make at least 1 ms (a spectrum up to
// 500 Hz, past any gamma rhythm), or one step where a step is longer.
function oscillationBinMs(dtMs) {
  return Math.max(1, Math.ceil(1 / dtMs - 1e-9)) * dtMs;
}

const POPULATION_COLUMNS = [
  { key: "name", label: "population", format: String },
  { key: "neurons", label: "neurons", format: (v) => v.toLocaleString() },
  { key: "spikes", label: "spikes", format: (v) => v.toLocaleString() },
  { key: "rate", label: "rate (Hz)", format: (v) => v.toFixed(2) },
  { key: "cv", label: "CV of ISI", format: (v) => v.toFixed(3) },
  { key: "fano", label: "Fano factor", format: (v) => v.toFixed(3) },
  { key: "chi", label: "synchrony χ", format: (v) => v.toFixed(3) },
];

// Each population's measures in a table (and its CSV), then, with several populations, their
// intervals' and CVs' histograms overlaid.
async function renderPopulations(token, several) {
  const { durationMs, dtMs, caption } = selection();
  const windowMs = Math.max(dtMs, Math.min(FANO_WINDOW_MS, durationMs / 10));
  const populations = await state.data.call("populations", { durationMs, binMs: rateBinMs(), windowMs, histograms: several });
  if (token !== state.renders) return;
  populationTable(populations);
  if (!several) return;
  const { measures } = populations;
  const names = measures.map((m) => m.name);
  const colors = measures.map((m) => m.color);
  const counted = (counts, what) => measures.map((m, k) => `${m.name}: ${counts[k].toLocaleString()} ${what}`).join(", ");
  addSlot("isi by population", (el, readout) => populationHistogram(el, readout, { ...populations.isi, names, colors, title: "Inter-spike intervals by population", xLabel: "interval (ms)", what: "intervals" }), { caption, summary: `Each population's share of its intervals per bin; ${counted(populations.isi.counts, "intervals")}.` });
  addSlot("cv by population", (el, readout) => populationHistogram(el, readout, { ...populations.cv, names, colors, title: "CV of ISI by population", xLabel: "CV of ISI", what: "neurons" }), { caption, summary: `Each population's share of its neurons (with two intervals or more) per bin of CV; ${counted(populations.cv.counts, "neurons")}.` });
}

function populationTable({ measures, binMs, windowMs, windows }) {
  const wrapper = document.createElement("div");
  wrapper.className = "plot";
  wrapper.dataset.plot = "populations";
  const head = document.createElement("div");
  head.className = "toolbar";
  const note = Object.assign(document.createElement("span"), {
    className: "note",
    textContent: `Rate: spikes per neuron and second. CV of ISI: the mean over neurons with two intervals or more. Fano factor: each neuron's spike-count variance over its mean in ${windows.toLocaleString()} windows of ${windowMs} ms, averaged over the neurons that spiked. Synchrony χ (Golomb): the standard deviation of the population's mean count per ${binMs} ms bin (the rate plot's) over the root mean square of its neurons' (0: independent, 1: in lockstep).`,
  });
  const rows = measures.map((m) => POPULATION_COLUMNS.map(({ key }) => m[key]));
  const csv = Object.assign(document.createElement("button"), { type: "button", textContent: "Populations CSV" });
  csv.addEventListener("click", () => {
    const lines = [POPULATION_COLUMNS.map((c) => c.key).join(","), ...rows.map((row) => row.map((v) => (v == null ? "" : String(v))).join(","))];
    download(fileName("populations", "csv"), new Blob([lines.join("\r\n") + "\r\n"], { type: "text/csv" }));
  });
  head.append(note, csv);
  const table = document.createElement("table");
  table.className = "points";
  table.setAttribute("aria-label", "Measures per population");
  const header = table.createTHead().insertRow();
  for (const column of POPULATION_COLUMNS) header.append(Object.assign(document.createElement("th"), { scope: "col", textContent: column.label }));
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    row.forEach((value, k) => (tr.insertCell().textContent = value == null ? "–" : POPULATION_COLUMNS[k].format(value)));
  }
  wrapper.append(head, table);
  const shown = $("#plots [data-plot=populations]");
  if (shown) shown.replaceWith(wrapper);
  else $("#plots").append(wrapper);
}

// The power spectrum and autocorrelation of each population's rate, in a bin suggested by dt.
async function renderOscillations(token) {
  const { dtMs, caption } = selection();
  const oscillations = await state.data.call("oscillations", { binMs: oscillationBinMs(dtMs), maxLagMs: MAX_LAG_MS });
  if (token !== state.renders || oscillations.bins < 8) return; // too short a run for either
  const { names, colors, frequencies, powers, binMs } = oscillations;
  const peaks = powers.map((power, k) => {
    let best = 0;
    for (let i = 1; i < power.length; i++) if (power[i] > power[best]) best = i;
    return `${names[k]}: peak at ${frequencies[best].toFixed(1)} Hz`;
  });
  addSlot("spectrum", (el, readout) => spectrumPlot(el, readout, oscillations), { caption, summary: `Power spectral density of the population rate in bins of ${binMs} ms, its mean removed; ${peaks.join("; ")}.` });
  addSlot("autocorrelation", (el, readout) => autocorrelationPlot(el, readout, oscillations), { caption, summary: `Autocorrelation of the population rate in bins of ${binMs} ms, lags up to ${oscillations.lagsMs.at(-1) ?? 0} ms.` });
}

// --- the network ------------------------------------------------------------------------------

// The job's network drawn from its validation (a NIR network as converted), the population shown
// highlighted; choosing a population there shows it.
async function renderNetwork(jobId) {
  $("#network-panel").hidden = true;
  state.network = null;
  let validation;
  try {
    validation = await api("/validate", { method: "POST", body: state.request });
  } catch {
    return; // accepted when submitted but refused now (the server's limits changed): no diagram
  }
  if (state.job !== jobId || !state.result) return;
  state.network = validation.network;
  $("#network-panel").hidden = false;
  redrawNetwork();
}

function redrawNetwork() {
  if (!state.network) return;
  const pick = (name) => {
    $("#layer").value = name;
    renderKeepingTime();
    redrawNetwork();
  };
  drawNetwork($("#network-diagram"), state.network, { dtMs: state.result.dt * 1000, picked: $("#layer").value, onPick: pick });
}

// --- live spikes ------------------------------------------------------------------------------

// A running job's spikes, chunk by chunk (the first layer in its record.live, batch entry 0),
// appended to the result worker's live raster, which is redrawn at most every LIVE_REDRAW_MS.
function addLiveChunk(jobId, chunk) {
  const name = Object.keys(chunk.layers)[0];
  if (name === undefined || state.job !== jobId || state.result) return;
  let live = state.live;
  if (!live || live.jobId !== jobId || chunk.start === 0) {
    // a chunk at step 0 begins a run: the first one, or a rerun after its worker died
    const shape = state.plan?.id === jobId ? state.plan.layers.find((layer) => layer.name === name)?.shape : null;
    const neurons = shape ? shape.reduce((a, b) => a * b, 1) : 1;
    live = state.live = { jobId, layer: name, neurons, sized: Boolean(shape), count: 0, drawn: 0, every: 1, stop: 0, steps: chunk.steps, dtMs: chunk.dt * 1000, timer: null, plot: null };
    state.data.call("liveReset", { neurons, dt: chunk.dt });
  }
  const spikes = chunk.layers[name];
  const times = [];
  const senders = [];
  for (let i = 0; i < spikes.times.length; i++) {
    if (spikes.batch[i] !== 0) continue;
    times.push(spikes.times[i]);
    senders.push(spikes.senders[i]);
    if (spikes.senders[i] >= live.neurons) live.neurons = spikes.senders[i] + 1;
  }
  state.data.call("liveAppend", { times: Int32Array.from(times), senders: Int32Array.from(senders) });
  live.drawn += times.length;
  live.count += spikes.count;
  live.every = Math.max(live.every, spikes.every);
  live.stop = chunk.stop;
  live.timer ??= setTimeout(() => drawLive(live), LIVE_REDRAW_MS);
}

function drawLive(live) {
  live.timer = null;
  if (state.live !== live || state.job !== live.jobId || state.result) return;
  showResultPanel(true);
  showResultControls(false); // the layer, bin and downloads belong to a result, which a running job has not yet
  const thinned = live.every > 1 ? ` Busy chunks are thinned: at most every ${live.every}th spike is drawn.` : "";
  $("#summary").textContent = `Live: layer ${live.layer}, ${live.count.toLocaleString()} spikes in the first ${live.stop.toLocaleString()} of ${live.steps.toLocaleString()} steps (batch entry 0).${thinned}`;
  if (!live.plot) {
    clearPlots();
    const describe = (layer, neuron) => `neuron ${neuron}`;
    live.plot = addSlot("raster", (el, readout) => rasterPlot(el, readout, { data: state.data, spikes: live.drawn, neurons: live.neurons, durationMs: live.steps * live.dtMs, describe })).plot;
  } else if (!live.sized && live.neurons !== live.plot.neuronRange.neurons) {
    live.plot.neuronRange.neurons = live.neurons; // no plan to say the layer's size: it grows with the senders seen
    live.plot.setScale("y", { min: -0.5, max: live.neurons - 0.5 });
  }
  live.plot.root.parentElement.dataset.points = String(live.drawn);
  live.plot.redraw(false, false);
}

async function cancel() {
  if (!state.job) return;
  try {
    const status = await api(`/jobs/${state.job}`, { method: "DELETE" });
    setStatus(`Job ${state.job.slice(0, 8)}: ${status.status === "cancelling" ? "stopping…" : status.status}`, null);
  } catch (error) {
    showError(error);
  }
}

async function loadJobs() {
  const list = $("#jobs");
  let page;
  try {
    page = await api("/jobs?limit=20");
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: `Could not list jobs: ${error.message}` }));
    if (error instanceof ApiError && error.status === 401) {
      $("#key").placeholder = "this server needs a key";
      showError(error);
    }
    return;
  }
  if (!apiKey()) $("#key").placeholder = "not needed by this server";
  if (!page.jobs.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "No jobs yet." }));
    return;
  }
  const time = new Intl.DateTimeFormat(undefined, { month: "short", day: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
  list.replaceChildren(
    ...page.jobs.map((job) => {
      const item = document.createElement("li");
      item.dataset.job = job.id;
      const label = document.createElement("span");
      label.className = "job-label";
      const title = Object.assign(document.createElement("strong"), { textContent: job.name ?? job.id.slice(0, 8) });
      const status = Object.assign(document.createElement("span"), { className: `state-${job.status}`, textContent: job.status });
      const facts = [time.format(new Date(job.created_at)), `${job.progress.steps_total.toLocaleString()} steps`];
      if (job.wall_s != null) facts.push(formatSeconds(job.wall_s));
      if (job.spikes != null) facts.push(`${job.spikes.toLocaleString()} spikes`);
      const details = Object.assign(document.createElement("span"), { className: "note", textContent: facts.join(" · ") });
      label.append(title, " ", status, details);
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = job.status === "succeeded" ? "Open" : FINAL.has(job.status) ? "Details" : "Follow";
      open.setAttribute("aria-label", `${open.textContent} job ${job.name ?? job.id.slice(0, 8)}`);
      open.addEventListener("click", () => (FINAL.has(job.status) && job.status !== "succeeded" ? showJob(job) : job.status === "succeeded" ? openResult(job.id).then(() => $("#result-panel").scrollIntoView({ block: "start" })) : follow(job.id)));
      item.append(label, open);
      return item;
    }),
  );
}

function showJob(job) {
  setStatus(`${jobLabel(job)}: ${job.status}${job.error ? ` — ${job.error}` : ""}`, null);
}

// --- results ------------------------------------------------------------------------------------

const ALL_LAYERS = "*"; // the layer choice that stacks every spiking layer in one raster

// Fetches the result as NPZ into the result worker; the page keeps its summary in state.result.
async function openResult(jobId) {
  showError(null);
  state.follow?.abort();
  let loaded;
  try {
    const url = `/api/v1/jobs/${jobId}/result?format=npz`;
    [loaded, state.request] = await Promise.all([state.data.call("load", { url, key: apiKey() }), api(`/jobs/${jobId}/request`)]);
  } catch (error) {
    showError(error.status ? new ApiError(error.status, error.message) : error);
    return;
  }
  state.result = { ...loaded.meta, layers: loaded.layers, weights: loaded.weights };
  showResultControls(true);
  state.arrival = { at: loaded.arrivedAt, bytes: loaded.bytes };
  state.job = jobId;
  setAddress("job", jobId);
  const layers = Object.keys(state.result.layers);
  const spiking = layers.filter((name) => state.result.layers[name].spikes != null);
  const select = $("#layer");
  select.replaceChildren(...layers.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
  const graph = Array.isArray(state.request?.network?.nodes);
  if (spiking.length > 1) select.append(Object.assign(document.createElement("option"), { value: ALL_LAYERS, textContent: graph ? "all populations, one raster" : "all layers, one raster" }));
  // a graph's populations open together, coloured by population; a chain's first spiking layer alone
  select.value = graph && spiking.length > 1 ? ALL_LAYERS : (spiking.find((name) => state.result.layers[name].spikes > 0) ?? layers[0]);
  const batches = state.result.batch;
  for (const element of document.querySelectorAll(".batch-only")) element.hidden = !batches;
  const plastic = Object.keys(state.result.weights);
  for (const element of document.querySelectorAll(".weights-only")) element.hidden = !plastic.length;
  $("#edge").replaceChildren(...plastic.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
  if (batches) {
    $("#batch-entry").replaceChildren(...Array.from({ length: batches }, (_, b) => Object.assign(document.createElement("option"), { value: b, textContent: b })));
  }
  showResultPanel(true);
  renderNetwork(jobId);
  const counts = spiking.map((name) => `${name}: ${state.result.layers[name].spikes.toLocaleString()} spikes`).join(", ");
  const size = loaded.bytes < 2 ** 20 ? `${(loaded.bytes / 1024).toFixed(1)} KiB` : `${(loaded.bytes / 2 ** 20).toFixed(1)} MiB`;
  $("#summary").textContent = `${state.result.steps.toLocaleString()} steps of ${state.result.dt * 1000} ms on ${state.result.device} in ${formatSeconds(state.result.stats.wall_s)}. ${counts || "No spikes recorded"}. (${size} of NPZ.)`;
  await render();
}

// A result layer's definition in the request: a layer of a chain, or a population of a graph.
function layerSpec(name) {
  const network = state.request?.network;
  if (Array.isArray(network?.nodes)) return network.nodes.find((node) => node?.name === name);
  const layers = network?.layers ?? [];
  return layers.find((layer, index) => (layer.name ?? `${layer.type}_${index}`) === name);
}

function threshold(name) {
  const spec = layerSpec(name);
  if (!spec) return null;
  const given = spec.params?.v_th;
  if (typeof given === "number") return given;
  return given === undefined ? (models.threshold[spec.type] ?? null) : null;
}

// A neuron by its flat index, as its layer's shape places it: "neuron 517 (channel 2, row 0, column 5)".
function neuronName(shape, n, short = false) {
  if (shape.length < 2) return short ? String(n) : `neuron ${n}`;
  const names = shape.length === 3 ? ["channel", "row", "column"] : shape.length === 2 ? ["row", "column"] : shape.map((_, i) => `axis ${i}`);
  const place = [];
  let rest = n;
  for (let axis = shape.length - 1; axis >= 0; axis--) {
    place.unshift(rest % shape[axis]);
    rest = Math.floor(rest / shape[axis]);
  }
  const where = place.map((value, axis) => `${names[axis]} ${value}`).join(", ");
  return short ? `${n} (${where})` : `neuron ${n} (${where})`;
}

function clearPlots() {
  destroyAll(state.plots);
  state.plots = [];
  state.containers = [];
  state.renderedAt = null; // until the next render has every plot in the page
  $("#plots").replaceChildren();
}

// A plot in the page: its title, PNG and CSV buttons, the plot, a hover readout and a one-line
// text summary (for screen readers, and for anyone who wants the numbers). A plot of the same
// title already in the page is swapped in place (in the time range the plots share); the others
// stay as they are.
function addSlot(title, make, { summary = "", caption = "" } = {}) {
  const wrapper = document.createElement("div");
  wrapper.className = "plot";
  const head = document.createElement("div");
  head.className = "plot-head";
  const png = Object.assign(document.createElement("button"), { type: "button", textContent: "PNG" });
  png.setAttribute("aria-label", `Save ${title} as PNG`);
  const csv = Object.assign(document.createElement("button"), { type: "button", textContent: "CSV" });
  csv.setAttribute("aria-label", `Save the data of ${title} as CSV`);
  const svg = Object.assign(document.createElement("button"), { type: "button", textContent: "SVG" });
  svg.setAttribute("aria-label", `Save ${title} as SVG`);
  head.append(png, svg, csv);
  const body = document.createElement("div");
  body.className = "plot-body";
  body.dataset.plot = title;
  const readout = document.createElement("div");
  readout.className = "readout";
  readout.setAttribute("aria-live", "off");
  const text = Object.assign(document.createElement("p"), { className: "plot-summary", id: `summary-${title.replaceAll(" ", "-")}`, textContent: summary });
  body.setAttribute("role", "img");
  body.setAttribute("aria-label", title);
  body.setAttribute("aria-describedby", text.id);
  wrapper.append(head, body, readout, text);
  const index = state.containers.findIndex((c) => c.dataset.plot === title);
  const range = index >= 0 ? timeRange() : null;
  if (index >= 0) {
    destroyAll([state.plots[index]]);
    state.containers[index].parentElement.replaceWith(wrapper);
  } else {
    $("#plots").append(wrapper);
  }
  const plot = make(body, readout, text);
  if (index >= 0) {
    state.plots[index] = plot;
    state.containers[index] = body;
    if (range) setTimeRange(range.min, range.max); // the new plot joins the others' time range
  } else {
    state.plots.push(plot);
    state.containers.push(body);
  }
  png.addEventListener("click", async () => {
    const marks = plot.marksImage ? await plot.marksImage() : null;
    const blob = await (await fetch(pngOf(plot, caption, marks))).blob();
    download(fileName(title, "png"), blob);
  });
  svg.addEventListener("click", async () => {
    let drawn = {};
    if (plot.marksImage) { // the raster: its spikes in view as shapes, or its density image
      const { x, y } = plot.scales;
      const marks = await state.data.call("marks", { xMin: x.min, xMax: x.max, yMin: y.min, yMax: y.max });
      drawn = marks ? { marks } : { image: bitmapUrl(await plot.marksImage()) };
    }
    download(fileName(title, "svg"), new Blob([svgOf(plot, caption, drawn)], { type: "image/svg+xml" }));
  });
  csv.addEventListener("click", async () => download(fileName(title, "csv"), new Blob([plot.spikesCsv ? await plot.spikesCsv() : seriesCsv(plot)], { type: "text/csv" })));
  return { plot, body, text };
}

// A download's name: the job, the layer (and batch entry) shown and the plot, e.g.
// spikeserve-1a2b3c4d-E-rate.svg.
function fileName(plot, extension) {
  const parts = ["spikeserve", state.job?.slice(0, 8)];
  if (state.result) {
    const { chosen, batch } = selection();
    parts.push(chosen === ALL_LAYERS ? "all-layers" : chosen, state.result.batch ? `batch-${batch}` : null);
  } else {
    parts.push("live");
  }
  return `${[...parts, plot].filter((part) => part != null).join("-").replace(/[^\w.-]+/g, "-")}.${extension}`;
}

function bitmapUrl(bitmap) {
  const canvas = Object.assign(document.createElement("canvas"), { width: bitmap.width, height: bitmap.height });
  canvas.getContext("2d").drawImage(bitmap, 0, 0);
  return canvas.toDataURL("image/png");
}

// The layers, batch entry and bin the controls name, as the plots need them.
function selection() {
  const result = state.result;
  const chosen = $("#layer").value;
  const names = chosen === ALL_LAYERS ? Object.keys(result.layers).filter((name) => result.layers[name].spikes != null) : [chosen];
  const dtMs = result.dt * 1000;
  return {
    chosen,
    names,
    layer: result.layers[names[0]],
    batch: result.batch ? Number($("#batch-entry").value || 0) : 0,
    dtMs,
    durationMs: result.steps * dtMs,
    caption: `spikeserve job ${state.job}, layer ${chosen === ALL_LAYERS ? names.join(" + ") : chosen}${result.batch ? `, batch entry ${$("#batch-entry").value || 0}` : ""}, dt ${dtMs} ms`,
  };
}

// Another layer or batch entry of the same run: its plots show the time window shown before.
async function renderKeepingTime() {
  const range = timeRange();
  const token = state.renders + 1;
  await render();
  if (range && state.renders === token) setTimeRange(range.min, range.max);
}

// Every plot of the chosen layer, from scratch (a new result, layer or batch entry).
async function render() {
  if (!state.result) return; // a job is running: its live raster stays
  const token = ++state.renders;
  clearPlots();
  const { chosen, names, layer, batch, durationMs, caption } = selection();
  if (!layer) return;
  const stale = () => token !== state.renders;
  const several = chosen === ALL_LAYERS;
  if (layer.spikes != null) {
    const selected = await state.data.call("select", { names, batch });
    if (stale()) return;
    const shape = layer.shape;
    const describe = (layerName, n, short) => {
      const group = several ? selected.groups.find((g) => g.name === layerName) ?? selected.groups.find((g) => n >= g.start && n < g.start + g.neurons) : null;
      if (several && group) return `${group.name} ${neuronName(state.result.layers[group.name].shape, layerName ? n : n - group.start, short)}`;
      return neuronName(shape, n, short);
    };
    if (!selected.spikes) $("#plots").append(Object.assign(document.createElement("p"), { className: "empty", textContent: `${several ? "No layer" : `Layer ${chosen}`} did not spike.` }));
    // The analyses wait for the raster's first frame: the worker answers in order, and a second of
    // statistics over millions of spikes queued before the frame would hold the raster back.
    let painted;
    const firstFrame = new Promise((resolve) => (painted = resolve));
    const layersNote = several ? ` Layers from the bottom: ${selected.groups.map((g) => `${g.name} (rows ${g.start}–${g.start + g.neurons - 1})`).join(", ")}.` : "";
    addSlot(
      "raster",
      (el, readout, text) =>
        rasterPlot(el, readout, {
          data: state.data,
          spikes: selected.spikes,
          neurons: selected.neurons,
          durationMs,
          describe,
          groups: several ? selected.groups : [],
          onDrawn: (drawn) => {
            state.drawn = drawn;
            painted();
            const how = drawn.mode === "density" ? `a density image (${drawn.visible.toLocaleString()} spikes in view: the more spikes a pixel holds, the stronger its colour; zoom in to under ${MARKS_UP_TO.toLocaleString()} to see each spike)` : `${drawn.visible.toLocaleString()} marks`;
            text.textContent = `${selected.spikes.toLocaleString()} spikes of ${selected.neurons.toLocaleString()} neurons over ${durationMs} ms, drawn as ${how}, in a background worker: the page stays responsive whatever the size.${layersNote}`;
          },
        }),
      { caption },
    );
    await renderRate(token);
    if (stale()) return;
    if (selected.spikes) {
      await firstFrame;
      if (stale()) return;
      await renderPopulations(token, several);
      if (stale()) return;
      await renderOscillations(token);
      if (stale()) return;
    }
    if (!several) await renderLayerAnalyses(names[0], batch, durationMs, caption, describe, stale);
  }
  if (!several && layer.voltages) await renderVoltage(token);
  if (stale()) return;
  if (Object.keys(state.result.weights).length) await renderWeights(token);
  if (stale()) return;
  if (layer.spikes == null && !layer.voltages) $("#plots").append(Object.assign(document.createElement("p"), { className: "empty", textContent: "Nothing was recorded for this layer." }));
  state.renderedAt = performance.timeOrigin + performance.now();
}

// The plots of one layer's spikes: counts across neurons, the intervals, the per-neuron table.
async function renderLayerAnalyses(name, batch, durationMs, caption, describe, stale) {
  const { counts } = await state.data.call("counts", { name, batch });
  if (stale()) return;
  const silent = counts.reduce((n, c) => n + (c === 0), 0);
  const most = counts.reduce((a, b) => Math.max(a, b), 0);
  addSlot("spike counts", (el, readout) => countHistogram(el, readout, counts), { caption, summary: `${counts.length.toLocaleString()} neurons: ${silent.toLocaleString()} silent, the busiest fired ${most.toLocaleString()} times.` });
  const statistics = await state.data.call("statistics", { durationMs });
  if (stale()) return;
  const cv = statistics.meanCv == null ? "no neuron has two intervals" : `mean CV of ISI ${statistics.meanCv.toFixed(3)} over ${statistics.withCv} neurons`;
  addSlot("isi", (el, readout) => isiHistogram(el, readout, statistics), { caption, summary: `${statistics.intervals.toLocaleString()} inter-spike intervals; ${cv}.` });
  statisticsTable(statistics.columns, name, describe, durationMs);
}

// The rate plot's bin: the one asked for, or the time step where that is shorter.
function rateBinMs() {
  const { dtMs } = selection();
  const asked = Number($("#bin").value);
  return Number.isFinite(asked) && asked >= dtMs ? asked : dtMs;
}

// The rate plot alone (a new bin leaves the other plots as they are).
async function renderRate(token = state.renders) {
  const { dtMs, durationMs, caption } = selection();
  const binMs = rateBinMs();
  showFieldNote("#bin-note", binMs === Number($("#bin").value) ? "" : `A bin must be at least the time step: using ${dtMs} ms.`);
  const rate = await state.data.call("rate", { binMs, durationMs });
  if (token !== state.renders) return;
  const peaks = rate.rates.map((rates, g) => {
    let peak = 0;
    for (let b = 0; b < rates.length - 1; b++) if (rates[b] > rates[peak]) peak = b;
    return `${rate.names[g] ? `${rate.names[g]}: ` : ""}peak ${rates[peak].toFixed(1)} Hz in [${rate.edges[peak]}, ${rate.edges[peak + 1]}) ms`;
  });
  addSlot("rate", (el, readout) => psthPlot(el, readout, { ...rate, durationMs, binMs }), { caption, summary: `Population rate in bins of ${binMs} ms; ${peaks.join("; ")}.` });
}

// A plastic edge in the request, by the name the result gives it (its name, or "from->to").
function edgeSpec(name) {
  const edges = state.request?.network?.edges ?? [];
  return edges.find((edge) => (edge?.name ?? `${edge?.from}->${edge?.to}`) === name);
}

// The chosen plastic edge's plots: its final weights between the rule's bounds, and their course
// over the run where the request took snapshots.
async function renderWeights(token = state.renders) {
  const name = $("#edge").value;
  const rule = edgeSpec(name)?.plasticity ?? {};
  const weights = await state.data.call("weights", { name, low: rule.w_min, high: rule.w_max });
  if (token !== state.renders) return;
  const { durationMs } = selection();
  const caption = `spikeserve job ${state.job}, plastic edge ${name}`;
  const fmt = (w) => w.toPrecision(3);
  const lowest = weights.counts[0];
  const highest = weights.counts[weights.counts.length - 1];
  addSlot("weights", (el, readout) => weightHistogram(el, readout, weights), {
    caption,
    summary: `${weights.synapses.toLocaleString()} synapses of ${name} between ${fmt(weights.low)} and ${fmt(weights.high)}: ${lowest.toLocaleString()} in the lowest bin, ${highest.toLocaleString()} in the highest; mean ${fmt(weights.mean[weights.mean.length - 1])}.`,
  });
  if (!weights.snapshots) return;
  const first = weights.mean[0];
  addSlot("weight course", (el, readout) => weightEvolution(el, readout, { ...weights, durationMs }), {
    caption,
    summary: `Mean weight from ${fmt(first)} at the first of ${weights.snapshots} snapshots to ${fmt(weights.mean[weights.mean.length - 1])} at the end, with ${weights.traces.length} synapses from the lowest to the highest final weight.`,
  });
}

const MAX_TRACES = 8; // more lines than this in one plot cannot be told apart

// The voltage plot alone (a new choice of neurons leaves the other plots as they are).
async function renderVoltage(token = state.renders) {
  const { names, layer, batch, dtMs, durationMs, caption } = selection();
  const name = names[0];
  const [steps, ...rest] = layer.voltages.shape;
  const available = layer.voltages.neurons ?? Array.from({ length: rest[rest.length - 1] }, (_, k) => k);
  const asked = $("#neurons").value.split(",").map((s) => s.trim()).filter((s) => s !== "");
  const present = asked.map(Number).filter((n) => Number.isInteger(n) && available.includes(n));
  const wanted = present.slice(0, MAX_TRACES);
  const refused = asked.filter((s) => !present.includes(Number(s)));
  const chosen = wanted.length ? wanted : available.slice(0, 3);
  const recorded = available.length > 12 ? `${available.slice(0, 12).join(", ")}, …` : available.join(", ");
  const notes = [];
  if (refused.length) notes.push(`Not recorded (recorded: ${recorded}): ${refused.join(", ")}${wanted.length ? "" : `; showing ${chosen.join(", ")}`}.`);
  if (present.length > MAX_TRACES) notes.push(`At most ${MAX_TRACES} traces at once: showing ${wanted.join(", ")}.`);
  showFieldNote("#neurons-note", notes.join(" "));
  const { traces } = await state.data.call("voltages", { name, batch, neurons: chosen });
  if (token !== state.renders) return;
  // a step's values share its time: step k (its spikes, the voltage after it) is drawn at k*dt
  const timeMs = Array.from({ length: steps }, (_, t) => t * dtMs);
  const unit = models.unit[layerSpec(name)?.type] || "Norse units";
  const shape = layer.shape;
  const ranges = traces.map((trace) => {
    let low = Infinity;
    let high = -Infinity;
    for (const v of trace.values) [low, high] = [Math.min(low, v), Math.max(high, v)];
    return `${neuronName(shape, trace.neuron)} from ${low.toFixed(3)} to ${high.toFixed(3)}`;
  });
  const labelled = traces.map((trace) => ({ ...trace, label: neuronName(shape, trace.neuron) }));
  addSlot("voltage", (el, readout) => voltagePlot(el, readout, { timeMs, traces: labelled, threshold: threshold(name), durationMs, unit }), { caption, summary: `Membrane voltage (${unit}): ${ranges.join("; ")}.` });
}

// The result panel, and the skip link to it (the first stop of the keyboard) while it shows.
function showResultPanel(shown) {
  $("#result-panel").hidden = !shown;
  $("#skip-to-result").hidden = !shown;
}

function showResultControls(shown) {
  for (const element of document.querySelectorAll("#result-panel .result-only")) element.hidden = !shown;
}

function plotNamed(name) {
  return state.plots[state.containers.findIndex((c) => c.dataset.plot === name)];
}

function zoom(kind) {
  const range = timeRange();
  if (!range || !state.result) return;
  const full = state.result.steps * state.result.dt * 1000;
  const span = range.max - range.min;
  const middle = (range.min + range.max) / 2;
  if (kind === "reset") {
    setTimeRange(0, full); // and every neuron again, as a double-click does
    const raster = plotNamed("raster");
    if (raster) zoomNeurons(raster, "all");
  } else if (kind === "in") setTimeRange(middle - span / 4, middle + span / 4);
  else setTimeRange(Math.max(0, middle - span), Math.min(full, middle + span));
}

function pan(direction) {
  const range = timeRange();
  if (!range || !state.result) return;
  const full = state.result.steps * state.result.dt * 1000;
  const span = range.max - range.min;
  const min = Math.min(Math.max(0, range.min + direction * span * 0.5), Math.max(0, full - span));
  setTimeRange(min, min + span);
}

// A Python script drawing the raster and rates on screen with matplotlib from the NPZ (of the
// name "Download NPZ" gives it).
function downloadScript() {
  const { names, batch, caption } = selection();
  const npzName = `${state.job}.npz`;
  const script = matplotlibScript({ jobId: state.job, npzName, layers: names, colors: names.map((_, k) => COLORS[k % COLORS.length]), batch, binMs: rateBinMs(), caption });
  download(npzName.replace(/\.npz$/, "-figure.py"), new Blob([script], { type: "text/x-python" }));
}

async function downloadResult(format) {
  if (!state.job) return;
  try {
    const response = await api(`/jobs/${state.job}/result?format=${format}`, { raw: true });
    download(`${state.job}.${format}`, await response.blob());
  } catch (error) {
    showError(error);
  }
}

// --- wiring -------------------------------------------------------------------------------------

// The JSON Schemas of a job request and of a sweep (whose base is a job request), from the API's
// OpenAPI document; the editor uses the one that matches what it holds.
async function loadSchemas() {
  let openapi;
  try {
    openapi = await (await fetch("/openapi.json")).json();
  } catch {
    return; // the editor works without: the server still checks every request
  }
  for (const [type, model] of Object.entries(openapi["x-neuron-models"] ?? {})) {
    models.threshold[type] = model.threshold;
    models.unit[type] = model.voltage_unit;
  }
  const schemas = withDiscriminators(openapi.components.schemas);
  // A network is a chain or a graph, told apart by which field it has; the editor's schema
  // library (JSON Schema draft 4) cannot branch on that, so there is a schema for each.
  const withNetwork = (name) => {
    const job = schemas.JobRequest;
    const network = { $ref: `#/components/schemas/${name}` };
    return { schemas: { ...schemas, JobRequest: { ...job, properties: { ...job.properties, network } } } };
  };
  const sweep = openapi.components.schemas.SweepRequest;
  const sweepOf = (components) => ({ ...sweep, properties: { ...sweep.properties, base: { $ref: "#/components/schemas/JobRequest" } }, components });
  const [chain, graph] = [withNetwork("Network"), withNetwork("GraphNetwork")];
  state.schemas = {
    job: { $ref: "#/components/schemas/JobRequest", components: chain },
    graph: { $ref: "#/components/schemas/JobRequest", components: graph },
    sweep: sweepOf(chain),
    "graph sweep": sweepOf(graph),
  };
  matchSchema(state.editor.getText());
}

// OpenAPI's `discriminator` (layers and inputs are told apart by "type") as the editor's schema
// library reads it, `oneOfProperty`: an error then names the field inside the layer or input,
// not "matches none of the layer kinds".
function withDiscriminators(node) {
  if (Array.isArray(node)) return node.map(withDiscriminators);
  if (!node || typeof node !== "object") return node;
  const copy = Object.fromEntries(Object.entries(node).map(([key, value]) => [key, withDiscriminators(value)]));
  if (node.discriminator?.propertyName && node.oneOf) copy.oneOfProperty = node.discriminator.propertyName;
  // an optional union (the request's input): the union itself, or its errors would stay unsaid
  const [first, second] = copy.anyOf ?? [];
  if (copy.anyOf?.length === 2 && second?.type === "null" && first?.oneOf) {
    const { anyOf, ...rest } = copy;
    return { ...rest, ...first };
  }
  return copy;
}

function matchSchema(text) {
  if (!state.schemas) return;
  let kind = "job";
  try {
    const body = JSON.parse(text);
    const sweep = isSweep(body);
    const graph = Array.isArray((sweep ? body.base : body)?.network?.nodes);
    kind = `${graph ? "graph " : ""}${sweep ? "sweep" : "job"}`.replace("graph job", "graph");
  } catch {
    kind = state.schemaKind ?? "job"; // half-typed: keep the schema it had
  }
  if (kind === state.schemaKind) return;
  state.schemaKind = kind;
  state.editor.setSchema(state.schemas[kind]);
}

// The request changed in the editor: the schema that fits it, and the form of its common fields.
let requestChanged = null;
function onRequestEdited(text) {
  clearTimeout(requestChanged);
  requestChanged = setTimeout(() => {
    matchSchema(text);
    if (!$("#form-fields").contains(document.activeElement)) renderForm();
  }, 200);
}

function renderForm() {
  let body = null;
  try {
    body = JSON.parse(state.editor.getText());
  } catch {
    /* not JSON (yet): no form */
  }
  const fields = body && typeof body === "object" && !isSweep(body) ? formFields(body, models.threshold) : [];
  const box = $("#form-fields");
  if (!fields.length) {
    box.replaceChildren(Object.assign(document.createElement("p"), { className: "note", textContent: "The form shows the fields of a job request that parses." }));
    return;
  }
  box.replaceChildren(
    ...fields.map((field, i) => {
      const row = document.createElement("div");
      const id = `form-field-${i}`;
      const label = Object.assign(document.createElement("label"), { htmlFor: id, textContent: field.label });
      const input = Object.assign(document.createElement("input"), { id, type: field.type, value: field.value ?? "", placeholder: field.placeholder ?? "" });
      if (field.type === "number") input.step = "any";
      input.dataset.path = JSON.stringify(field.path);
      input.addEventListener("change", () => {
        let current;
        try {
          current = JSON.parse(state.editor.getText());
        } catch {
          return;
        }
        setPath(current, field.path, field.type === "number" ? (input.value === "" ? undefined : Number(input.value)) : input.value || undefined);
        state.editor.setText(JSON.stringify(current, null, 2));
      });
      row.append(label, input);
      return row;
    }),
  );
}

// Sets (or, for undefined, removes) the value at a path of keys and indices, making objects on the way.
function setPath(target, path, value) {
  let node = target;
  for (const key of path.slice(0, -1)) {
    if (node[key] === undefined || node[key] === null) node[key] = {};
    node = node[key];
  }
  const last = path[path.length - 1];
  if (value === undefined) delete node[last];
  else node[last] = value;
}

function init() {
  state.editor = createEditor($("#request"), { label: "Request JSON (a job, or a sweep: base, axes, mode)", describedBy: "validation", onChange: onRequestEdited });
  loadSchemas();
  $("#key").value = apiKey();
  $("#key-form").addEventListener("submit", (event) => {
    event.preventDefault();
    setApiKey($("#key").value.trim());
    showError(null); // a refusal of the previous key is old news; loadJobs shows a new one
    loadJobs();
    loadSweeps(openSweep);
  });
  $("#examples").addEventListener("change", pickExample);
  $("#nir-file").addEventListener("change", loadNir);
  $("#validate").addEventListener("click", validate);
  $("#submit").addEventListener("click", submit);
  $("#cancel").addEventListener("click", cancel);
  $("#refresh-jobs").addEventListener("click", () => {
    loadJobs();
    loadSweeps(openSweep);
  });
  $("#sweep-layer").addEventListener("change", rerenderSweep);
  $("#sweep-cancel").addEventListener("click", () => cancelSweep().catch(showError));
  $("#sweep-csv").addEventListener("click", () => downloadSummary(download).catch(showError));
  for (const id of ["#layer", "#batch-entry"]) $(id).addEventListener("change", renderKeepingTime);
  $("#layer").addEventListener("change", redrawNetwork);
  // a new bin redraws the rate plot and the populations' table (their synchrony is measured in
  // that bin); a new choice of voltage neurons, the voltage plot only
  $("#bin").addEventListener("change", async () => {
    if (!state.result || state.result.layers[selection().names[0]]?.spikes == null) return;
    await renderRate();
    await renderPopulations(state.renders, selection().chosen === ALL_LAYERS);
  });
  $("#neurons").addEventListener("change", () => state.result && selection().layer?.voltages && renderVoltage());
  $("#edge").addEventListener("change", () => state.result && renderWeights());
  for (const button of document.querySelectorAll("[data-zoom]")) button.addEventListener("click", () => zoom(button.dataset.zoom));
  for (const button of document.querySelectorAll("[data-pan]")) button.addEventListener("click", () => pan(Number(button.dataset.pan)));
  for (const button of document.querySelectorAll("[data-neurons]")) {
    button.addEventListener("click", () => {
      const raster = plotNamed("raster");
      if (raster) zoomNeurons(raster, button.dataset.neurons);
    });
  }
  $("#download-json").addEventListener("click", () => downloadResult("json"));
  $("#download-npz").addEventListener("click", () => downloadResult("npz"));
  $("#download-script").addEventListener("click", downloadScript);
  window.addEventListener("resize", () => resizeAll(state.plots, state.containers));
  window.addEventListener("hashchange", openAddress);
  // the skip link moves the focus itself: following its href would replace the job's address
  $("#skip-to-result").addEventListener("click", (event) => {
    event.preventDefault();
    $("#result-title").focus();
    $("#result-panel").scrollIntoView({ block: "start" });
  });
  loadExamples();
  loadJobs();
  loadSweeps(openSweep);
  openAddress();
}

init();
