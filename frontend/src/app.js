// The viewer: edit a request, submit it, follow it live, and look at what the network did.
import { ApiError, api, apiKey, followEvents, setApiKey } from "./api.js";
import { countHistogram, destroyAll, isiHistogram, pngOf, psthPlot, rasterPlot, resizeAll, setTimeRange, timeRange, voltagePlot, zoomNeurons } from "./plots.js";
import { STAT_COLUMNS, spikeStatistics, statisticsCsv } from "./stats.js";
import { cancelSweep, downloadSummary, followSweep, loadSweeps, rerender as rerenderSweep } from "./sweep.js";

const $ = (selector) => document.querySelector(selector);
const DEFAULT_THRESHOLD = { lif: 1, lifbox: 1, iaf: 1, alif: 1, lifadex: 1, lif_recurrent: 1, izhikevich: 30 };
const FINAL = new Set(["succeeded", "failed", "cancelled"]);

const LIVE_REDRAW_MS = 300; // the live raster is redrawn at most this often
const state = { examples: {}, nir: null, job: null, follow: null, result: null, request: null, live: null, plots: [], containers: [] };
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

function formatLoc(loc) {
  return loc.reduce((path, part) => (typeof part === "number" ? `${path}[${part}]` : path ? `${path}.${part}` : part), "");
}

function showValidation(errors, message) {
  const box = $("#validation");
  box.replaceChildren();
  if (message) {
    const ok = document.createElement("p");
    ok.className = "ok";
    ok.textContent = message;
    box.append(ok);
  }
  if (errors?.length) {
    const list = document.createElement("ul");
    list.setAttribute("aria-label", "Validation errors");
    for (const error of errors) {
      const item = document.createElement("li");
      const path = document.createElement("code");
      path.textContent = formatLoc(error.loc) || "request";
      item.append(path, `: ${error.msg}`);
      list.append(item);
    }
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
    body = JSON.parse($("#request").value);
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
    const plan = await api("/validate", { method: "POST", body });
    showValidation([], `Valid: ${plan.layers.length} layers, ${plan.neurons.toLocaleString()} neurons, ${plan.steps.toLocaleString()} steps.`);
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
  if (!$("#request").value.trim() && state.examples.seed) {
    select.value = "seed"; // a first visit starts from a request that runs, not an empty box
    pickExample();
  }
}

function pickExample() {
  const name = $("#examples").value;
  if (!name) return;
  $("#request").value = JSON.stringify(state.examples[name], null, 2);
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
  } catch (error) {
    if (error instanceof ApiError && error.status === 422 && Array.isArray(error.detail)) showValidation(error.detail);
    else showError(error);
    return;
  }
  showValidation([], "Submitted.");
  follow(created.id);
  loadJobs();
}

// The job or sweep on screen is in the address (#job=ID, #sweep=ID): a reload or a shared link opens it again.
function setAddress(kind, id) {
  if (location.hash !== `#${kind}=${id}`) history.replaceState(null, "", `#${kind}=${id}`);
}

async function openAddress() {
  const match = /^#(job|sweep)=([0-9a-f]{32})$/.exec(location.hash);
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
  destroyAll(state.plots); // the previous job's plots do not stay under this one
  state.plots = [];
  state.containers = [];
  $("#plots").replaceChildren();
  $("#result-panel").hidden = true;
  $("#cancel").disabled = false;
  setStatus(`Job ${jobId.slice(0, 8)}: queued`, { steps_done: 0, steps_total: 1 });
  let last = null;
  try {
    const onStatus = (event) => {
      last = event;
      const percent = event.steps_total ? Math.floor((100 * event.steps_done) / event.steps_total) : 0;
      setStatus(`Job ${jobId.slice(0, 8)}: ${event.status}, ${event.steps_done.toLocaleString()} of ${event.steps_total.toLocaleString()} steps (${percent}%)`, event);
    };
    await followEvents(jobId, onStatus, controller.signal, (chunk) => addLiveChunk(jobId, chunk));
  } catch (error) {
    if (error.name === "AbortError") return;
    showError(error);
  }
  if (state.follow !== controller) return;
  $("#cancel").disabled = true;
  const status = await api(`/jobs/${jobId}`).catch(() => null);
  const final = status?.status ?? last?.status;
  if (final === "succeeded") {
    setStatus(`Job ${jobId.slice(0, 8)}: succeeded on ${status.device}`, null);
    await openResult(jobId);
  } else if (final) {
    setStatus(`Job ${jobId.slice(0, 8)}: ${final}${status?.error ? ` — ${status.error}` : ""}`, null);
  }
  loadJobs();
}

// --- per-neuron statistics ----------------------------------------------------------------------

const STATS_SHOWN = 100; // rows in the page; the CSV has every neuron

function statisticsTable(rows, layerName) {
  const wrapper = document.createElement("div");
  wrapper.className = "plot";
  wrapper.dataset.plot = "statistics";
  const head = document.createElement("div");
  head.className = "toolbar";
  const caption = Object.assign(document.createElement("span"), { className: "note" });
  const csv = Object.assign(document.createElement("button"), { type: "button", textContent: "Statistics CSV" });
  csv.addEventListener("click", () => download(`${layerName}-statistics.csv`, new Blob([statisticsCsv(rows)], { type: "text/csv" })));
  head.append(caption, csv);
  const table = document.createElement("table");
  table.className = "points";
  table.setAttribute("aria-label", `Per-neuron statistics of layer ${layerName}`);
  const order = { key: "neuron", descending: false };
  const draw = () => {
    const sorted = [...rows].sort((a, b) => {
      const x = a[order.key] ?? -Infinity;
      const y = b[order.key] ?? -Infinity;
      return (x - y) * (order.descending ? -1 : 1) || a.neuron - b.neuron;
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
    for (const row of sorted.slice(0, STATS_SHOWN)) {
      const tr = body.insertRow();
      tr.insertCell().textContent = String(row.neuron);
      tr.insertCell().textContent = String(row.count);
      tr.insertCell().textContent = row.rate.toFixed(2);
      tr.insertCell().textContent = row.meanIsi == null ? "–" : row.meanIsi.toFixed(3);
      tr.insertCell().textContent = row.cv == null ? "–" : row.cv.toFixed(3);
    }
    table.replaceChildren(Object.assign(document.createElement("thead"), {}), body);
    table.tHead.append(header);
    caption.textContent = rows.length > STATS_SHOWN ? `${STATS_SHOWN} of ${rows.length} neurons shown (sorted by ${order.key}); the CSV has all.` : `${rows.length} neurons.`;
  };
  draw();
  wrapper.append(head, table);
  $("#plots").append(wrapper);
}

// --- live spikes ------------------------------------------------------------------------------

// A running job's spikes, chunk by chunk (the first layer in its record.live, batch entry 0).
function addLiveChunk(jobId, chunk) {
  const name = Object.keys(chunk.layers)[0];
  if (name === undefined || state.job !== jobId) return;
  let live = state.live;
  if (!live || live.jobId !== jobId || chunk.start === 0) {
    // a chunk at step 0 begins a run: the first one, or a rerun after its worker died
    live = state.live = { jobId, layer: name, timesMs: [], senders: [], neurons: 1, count: 0, every: 1, stop: 0, steps: chunk.steps, dtMs: chunk.dt * 1000, timer: null };
  }
  const spikes = chunk.layers[name];
  for (let i = 0; i < spikes.times.length; i++) {
    if (spikes.batch[i] !== 0) continue;
    live.timesMs.push(spikes.times[i] * live.dtMs);
    live.senders.push(spikes.senders[i]);
    if (spikes.senders[i] >= live.neurons) live.neurons = spikes.senders[i] + 1;
  }
  live.count += spikes.count;
  live.every = Math.max(live.every, spikes.every);
  live.stop = chunk.stop;
  live.timer ??= setTimeout(() => drawLive(live), LIVE_REDRAW_MS);
}

function drawLive(live) {
  live.timer = null;
  if (state.live !== live || state.job !== live.jobId || state.result) return;
  destroyAll(state.plots);
  state.plots = [];
  state.containers = [];
  $("#plots").replaceChildren();
  $("#result-panel").hidden = false;
  const thinned = live.every > 1 ? ` Busy chunks are thinned: at most every ${live.every}th spike is drawn.` : "";
  $("#summary").textContent = `Live: layer ${live.layer}, ${live.count.toLocaleString()} spikes in the first ${live.stop.toLocaleString()} of ${live.steps.toLocaleString()} steps (batch entry 0).${thinned}`;
  const slot = plotSlot("raster");
  const { timesMs, senders, neurons } = live;
  state.plots.push(rasterPlot(slot.body, slot.readout, { timesMs, senders, neurons, durationMs: live.steps * live.dtMs }));
  state.containers.push(slot.body);
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
  list.replaceChildren(
    ...page.jobs.map((job) => {
      const item = document.createElement("li");
      const label = document.createElement("span");
      label.innerHTML = `<code></code> <span class="state-${job.status}"></span>`;
      label.querySelector("code").textContent = job.id.slice(0, 8);
      label.querySelector("span").textContent = job.status;
      const open = document.createElement("button");
      open.type = "button";
      open.textContent = job.status === "succeeded" ? "Open" : FINAL.has(job.status) ? "Details" : "Follow";
      open.setAttribute("aria-label", `${open.textContent} job ${job.id.slice(0, 8)}`);
      open.addEventListener("click", () => (FINAL.has(job.status) && job.status !== "succeeded" ? showJob(job) : job.status === "succeeded" ? openResult(job.id) : follow(job.id)));
      item.append(label, open);
      return item;
    }),
  );
}

function showJob(job) {
  setStatus(`Job ${job.id.slice(0, 8)}: ${job.status}${job.error ? ` — ${job.error}` : ""}`, null);
}

// --- results ------------------------------------------------------------------------------------

async function openResult(jobId) {
  showError(null);
  try {
    const [result, request] = await Promise.all([api(`/jobs/${jobId}/result`), api(`/jobs/${jobId}/request`)]);
    state.result = result;
    state.request = request;
    state.job = jobId;
    setAddress("job", jobId);
  } catch (error) {
    showError(error);
    return;
  }
  const layers = Object.keys(state.result.layers);
  const select = $("#layer");
  select.replaceChildren(...layers.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
  const firstWithSpikes = layers.find((name) => state.result.layers[name].spikes?.times.length) ?? layers[0];
  select.value = firstWithSpikes;
  const batches = state.result.batch;
  for (const element of document.querySelectorAll(".batch-only")) element.hidden = !batches;
  if (batches) {
    $("#batch-entry").replaceChildren(...Array.from({ length: batches }, (_, b) => Object.assign(document.createElement("option"), { value: b, textContent: b })));
  }
  $("#result-panel").hidden = false;
  const stats = state.result.stats;
  const spikes = layers.map((name) => `${name}: ${(state.result.layers[name].spikes?.times.length ?? 0).toLocaleString()} spikes`).join(", ");
  $("#summary").textContent = `${state.result.steps.toLocaleString()} steps of ${state.result.dt * 1000} ms on ${state.result.device} in ${stats.wall_s} s. ${spikes}.`;
  render();
}

function layerSpec(name) {
  const layers = state.request?.network?.layers ?? [];
  return layers.find((layer, index) => (layer.name ?? `${layer.type}_${index}`) === name);
}

function threshold(name) {
  const spec = layerSpec(name);
  if (!spec) return null;
  const given = spec.params?.v_th;
  if (typeof given === "number") return given;
  return given === undefined ? (DEFAULT_THRESHOLD[spec.type] ?? null) : null;
}

function plotSlot(title) {
  const wrapper = document.createElement("div");
  wrapper.className = "plot";
  const head = document.createElement("div");
  head.className = "plot-head";
  const png = document.createElement("button");
  png.type = "button";
  png.textContent = "PNG";
  png.setAttribute("aria-label", `Save ${title} as PNG`);
  head.append(png);
  const body = document.createElement("div");
  body.className = "plot-body";
  body.dataset.plot = title;
  const readout = document.createElement("div");
  readout.className = "readout";
  readout.setAttribute("aria-live", "off");
  wrapper.append(head, body, readout);
  $("#plots").append(wrapper);
  return { body, readout, png };
}

function render() {
  if (!state.result) return; // a job is running: its live raster stays
  destroyAll(state.plots);
  state.plots = [];
  state.containers = [];
  $("#plots").replaceChildren();
  const result = state.result;
  const name = $("#layer").value;
  const layer = result.layers[name];
  if (!layer) return;
  const dtMs = result.dt * 1000;
  const durationMs = result.steps * dtMs;
  const neurons = layer.shape.reduce((a, b) => a * b, 1);
  const batch = result.batch ? Number($("#batch-entry").value || 0) : 0;
  const add = (title, make) => {
    const slot = plotSlot(title);
    const plot = make(slot.body, slot.readout);
    const caption = `spikeserve job ${state.job}, layer ${name}${result.batch ? `, batch entry ${batch}` : ""}, dt ${dtMs} ms`;
    slot.png.addEventListener("click", () => fetch(pngOf(plot, caption)).then((r) => r.blob()).then((blob) => download(`${name}-${title.replaceAll(" ", "-")}.png`, blob)));
    state.plots.push(plot);
    state.containers.push(slot.body);
  };
  if (layer.spikes) {
    const keep = [];
    layer.spikes.batch.forEach((b, i) => b === batch && keep.push(i));
    const timesMs = keep.map((i) => layer.spikes.times[i] * dtMs);
    const senders = keep.map((i) => layer.spikes.senders[i]);
    if (!timesMs.length) {
      const empty = Object.assign(document.createElement("p"), { className: "empty", textContent: `Layer ${name} did not spike.` });
      $("#plots").append(empty);
    }
    add("raster", (el, readout) => rasterPlot(el, readout, { timesMs, senders, neurons, durationMs }));
    const asked = Number($("#bin").value);
    const binMs = Number.isFinite(asked) && asked >= dtMs ? asked : dtMs;
    showFieldNote("#bin-note", binMs === asked ? "" : `A bin must be at least the time step: using ${dtMs} ms.`);
    add("rate", (el, readout) => psthPlot(el, readout, { timesMs, neurons, samples: 1, durationMs, binMs }));
    const counts = result.batch ? layer.counts[batch] : layer.counts;
    add("spike counts", (el, readout) => countHistogram(el, readout, counts));
    const statistics = spikeStatistics(timesMs, senders, neurons, durationMs);
    add("isi", (el, readout) => isiHistogram(el, readout, statistics));
    statisticsTable(statistics.rows, name);
  }
  if (layer.voltages) {
    const [steps, ...rest] = layer.voltages.shape;
    const kept = rest[rest.length - 1];
    const batches = rest.length === 2 ? rest[0] : 1;
    const available = layer.voltages.neurons ?? Array.from({ length: kept }, (_, k) => k);
    const asked = $("#neurons").value.split(",").map((s) => s.trim()).filter((s) => s !== "");
    const wanted = asked.map(Number).filter((n) => Number.isInteger(n) && available.includes(n)).slice(0, 8);
    const refused = asked.filter((s) => !wanted.includes(Number(s)));
    const chosen = wanted.length ? wanted : available.slice(0, 3);
    const recorded = available.length > 12 ? `${available.slice(0, 12).join(", ")}, …` : available.join(", ");
    showFieldNote(
      "#neurons-note",
      refused.length ? `Not recorded (recorded: ${recorded}): ${refused.join(", ")}${wanted.length ? "" : `; showing ${chosen.join(", ")}`}.` : "",
    );
    // a step's values share its time: step k (its spikes, the voltage after it) is drawn at k*dt
    const timeMs = Array.from({ length: steps }, (_, t) => t * dtMs);
    const traces = chosen.map((neuron) => {
      const k = available.indexOf(neuron);
      const values = new Float64Array(steps);
      for (let t = 0; t < steps; t++) values[t] = layer.voltages.data[(t * batches + batch) * kept + k];
      return { neuron, values };
    });
    const unit = layerSpec(name)?.type === "izhikevich" ? "mV" : null; // the other models are in Norse's units
    add("voltage", (el, readout) => voltagePlot(el, readout, { timeMs, traces, threshold: threshold(name), durationMs, unit }));
  }
  if (!layer.spikes && !layer.voltages) $("#plots").append(Object.assign(document.createElement("p"), { className: "empty", textContent: "Nothing was recorded for this layer." }));
}

function zoom(kind) {
  const range = timeRange();
  if (!range || !state.result) return;
  const full = state.result.steps * state.result.dt * 1000;
  const span = range.max - range.min;
  const middle = (range.min + range.max) / 2;
  if (kind === "reset") setTimeRange(0, full);
  else if (kind === "in") setTimeRange(middle - span / 4, middle + span / 4);
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

function init() {
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
  for (const id of ["#layer", "#batch-entry", "#bin", "#neurons"]) $(id).addEventListener("change", render);
  for (const button of document.querySelectorAll("[data-zoom]")) button.addEventListener("click", () => zoom(button.dataset.zoom));
  for (const button of document.querySelectorAll("[data-pan]")) button.addEventListener("click", () => pan(Number(button.dataset.pan)));
  for (const button of document.querySelectorAll("[data-neurons]")) {
    button.addEventListener("click", () => {
      const raster = state.plots[state.containers.findIndex((c) => c.dataset.plot === "raster")];
      if (raster) zoomNeurons(raster, button.dataset.neurons);
    });
  }
  $("#download-json").addEventListener("click", () => downloadResult("json"));
  $("#download-npz").addEventListener("click", () => downloadResult("npz"));
  window.addEventListener("resize", () => resizeAll(state.plots, state.containers));
  window.addEventListener("hashchange", openAddress);
  loadExamples();
  loadJobs();
  loadSweeps(openSweep);
  openAddress();
}

init();
