// The sweep page: a sweep's progress, its tuning curves (mean rate against the first axis: a line
// per value of the second axis, or per layer), a heat map over the first two axes with its values
// in the cells, and its points, each a job that opens like any.
import { api, followStream } from "./api.js";
import { destroyAll, heatMap, tuningPlot } from "./plots.js";

const $ = (selector) => document.querySelector(selector);
const FINAL = new Set(["succeeded", "failed", "cancelled"]);
const REDRAW_MS = 500; // the table and plots are rebuilt at most this often while points end
const CURVES_UP_TO = 8; // a tuning curve per value of the second axis, if it has this few values

const view = { id: null, follow: null, plots: [], heat: null, table: null, status: null, timer: null, openPoint: () => {} };
window.spikeserveSweep = view; // for the browser tests

function key(value) {
  return JSON.stringify(value);
}

function distinct(values) {
  const seen = new Map();
  for (const value of values) if (!seen.has(key(value))) seen.set(key(value), value);
  return [...seen.values()];
}

function mean(numbers) {
  const finite = numbers.filter((n) => n != null && Number.isFinite(n));
  return finite.length ? finite.reduce((a, b) => a + b, 0) / finite.length : null;
}

function label(value) {
  return typeof value === "string" ? value : JSON.stringify(value);
}

// The table's layout: which columns are axes and which layers have rates.
function layout(table) {
  const first = table.columns.indexOf("status") + 1;
  const axes = table.columns.slice(first, table.columns.indexOf("wall_s"));
  const layers = table.columns.filter((c) => c.endsWith(".rate_hz")).map((c) => c.slice(0, -".rate_hz".length));
  const rows = table.rows.map((row) => Object.fromEntries(table.columns.map((c, i) => [c, row[i]])));
  return { axes, layers, rows };
}

function showStatus(status) {
  const p = status.points;
  const short = status.id.slice(0, 8);
  $("#sweep-status").textContent = `Sweep ${short}: ${status.status}, ${p.ended} of ${p.total} points ended (${p.succeeded} succeeded, ${p.failed} failed, ${p.cancelled} cancelled)`;
  const bar = $("#sweep-progress");
  bar.max = Math.max(p.total, 1);
  bar.value = p.ended;
  $("#sweep-cancel").disabled = FINAL.has(status.status);
}

function render() {
  const { axes, layers, rows } = layout(view.table);
  destroyAll(view.plots);
  view.plots = [];
  view.heat = null;
  const plots = $("#sweep-plots");
  plots.replaceChildren();
  const slot = (title) => {
    const body = Object.assign(document.createElement("div"), { className: "plot-body" });
    body.dataset.plot = title;
    const readout = Object.assign(document.createElement("div"), { className: "readout" });
    const wrapper = Object.assign(document.createElement("div"), { className: "plot" });
    wrapper.append(body, readout);
    plots.append(wrapper);
    return { body, readout };
  };
  const layerSelect = $("#sweep-layer");
  const chosen = layers.includes(layerSelect.value) ? layerSelect.value : layers[0];
  layerSelect.replaceChildren(...layers.map((name) => Object.assign(document.createElement("option"), { value: name, textContent: name })));
  if (chosen) layerSelect.value = chosen;
  if (axes.length && layers.length) {
    const xs = distinct(rows.map((row) => row[axes[0]]));
    const numeric = xs.every((x) => typeof x === "number");
    const at = (x) => rows.filter((row) => key(row[axes[0]]) === key(x));
    const seconds = axes.length > 1 ? distinct(rows.map((row) => row[axes[1]])) : [];
    let lines;
    let averaged;
    if (seconds.length >= 2 && seconds.length <= CURVES_UP_TO && chosen) {
      // a curve per value of the second axis, of the chosen layer's rate
      lines = seconds.map((y) => ({
        label: `${axes[1]} = ${label(y)}`,
        ys: xs.map((x) => mean(at(x).filter((row) => key(row[axes[1]]) === key(y)).map((row) => row[`${chosen}.rate_hz`]))),
      }));
      averaged = ` (${chosen}${axes.length > 2 ? `; mean over ${axes.slice(2).join(", ")}` : ""})`;
    } else {
      lines = layers.map((layer) => ({ label: layer, ys: xs.map((x) => mean(at(x).map((row) => row[`${layer}.rate_hz`]))) }));
      averaged = axes.length > 1 ? ` (mean over ${axes.slice(1).join(", ")})` : "";
    }
    const { body, readout } = slot("tuning");
    view.plots.push(tuningPlot(body, readout, { xs: numeric ? xs : xs.map((_, i) => i), lines, xLabel: axes[0] + averaged }));
    if (axes.length > 1 && chosen) {
      const ys = distinct(rows.map((row) => row[axes[1]]));
      const cell = (x, y) => rows.filter((row) => key(row[axes[0]]) === key(x) && key(row[axes[1]]) === key(y));
      const values = ys.map((y) => xs.map((x) => mean(cell(x, y).map((row) => row[`${chosen}.rate_hz`]))));
      const heat = slot("heatmap");
      view.heat = heatMap(heat.body, heat.readout, {
        columns: xs.map(label),
        rows: ys.map(label),
        values,
        xLabel: axes[0],
        yLabel: axes[1],
        unit: `${chosen} rate (Hz)`,
        onPick: (i, j) => {
          const picked = cell(xs[i], ys[j]).find((row) => row.status === "succeeded");
          if (picked) view.openPoint(picked.job_id);
        },
      });
    }
  }
  renderTable(axes, layers, rows);
}

function renderTable(axes, layers, rows) {
  const table = document.createElement("table");
  table.className = "points";
  const head = table.createTHead().insertRow();
  for (const title of ["point", ...axes, "status", ...layers.map((l) => `${l} rate (Hz)`), ""]) head.append(Object.assign(document.createElement("th"), { textContent: title, scope: "col" }));
  const body = table.createTBody();
  for (const row of rows) {
    const tr = body.insertRow();
    const cells = [row.point, ...axes.map((a) => label(row[a])), row.status, ...layers.map((l) => (row[`${l}.rate_hz`] == null ? "–" : row[`${l}.rate_hz`].toFixed(2)))];
    for (const text of cells) tr.insertCell().textContent = String(text);
    const open = document.createElement("button");
    open.type = "button";
    open.textContent = "Open";
    open.disabled = row.status !== "succeeded";
    open.setAttribute("aria-label", `Open point ${row.point}`);
    open.addEventListener("click", () => view.openPoint(row.job_id));
    tr.insertCell().append(open);
    if (row.error) tr.title = row.error;
  }
  $("#sweep-table").replaceChildren(table);
}

async function refresh() {
  view.timer = null;
  const id = view.id;
  const [status, table] = await Promise.all([api(`/sweeps/${id}`), api(`/sweeps/${id}/summary`)]);
  if (view.id !== id) return;
  view.status = status;
  view.table = table;
  showStatus(status);
  render();
}

// Shows sweep `id` and follows it until it ends; `openPoint(jobId)` opens a point's result.
export async function followSweep(id, openPoint) {
  view.follow?.abort();
  const controller = new AbortController();
  Object.assign(view, { id, follow: controller, openPoint, table: null, status: null });
  $("#sweep-panel").hidden = false;
  $("#sweep-plots").replaceChildren();
  $("#sweep-table").replaceChildren();
  await refresh();
  if (FINAL.has(view.status.status)) return;
  try {
    await followStream(`/sweeps/${id}/events`, (status) => {
      if (view.id !== id) return;
      showStatus(status);
      view.timer ??= setTimeout(refresh, REDRAW_MS);
    }, controller.signal);
  } catch (error) {
    if (error.name === "AbortError") return;
    throw error;
  }
  if (view.id !== id) return;
  clearTimeout(view.timer); // the final refresh below replaces a pending one (which would redraw it all again)
  view.timer = null;
  await refresh();
}

export async function cancelSweep() {
  if (!view.id) return;
  showStatus(await api(`/sweeps/${view.id}`, { method: "DELETE" }));
}

export async function downloadSummary(download) {
  const response = await api(`/sweeps/${view.id}/summary?format=csv`, { raw: true });
  download(`sweep-${view.id}.csv`, await response.blob());
}

export function rerender() {
  if (view.table) render();
}

export async function loadSweeps(openSweep) {
  const list = $("#sweeps");
  let page;
  try {
    page = await api("/sweeps?limit=10");
  } catch (error) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: `Could not list sweeps: ${error.message}` }));
    return;
  }
  if (!page.sweeps.length) {
    list.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: "No sweeps yet." }));
    return;
  }
  list.replaceChildren(
    ...page.sweeps.map((sweep) => {
      const item = document.createElement("li");
      const text = Object.assign(document.createElement("span"), { textContent: `${sweep.id.slice(0, 8)} ${sweep.points.total} points ` });
      text.append(Object.assign(document.createElement("span"), { className: `state-${sweep.status}`, textContent: sweep.status }));
      const open = Object.assign(document.createElement("button"), { type: "button", textContent: "Open" });
      open.setAttribute("aria-label", `Open sweep ${sweep.id.slice(0, 8)}`);
      open.addEventListener("click", () => openSweep(sweep.id));
      item.append(text, open);
      return item;
    }),
  );
}
