"""Timing the viewer's raster in a real browser, to the painted frame: what the big-raster test
checks and what benchmarks/viewer.py reports."""

import json

from tests.frontend.conftest import set_request, submit_and_wait

# Main-thread tasks over 50 ms, as Chromium reports them (PerformanceObserver "longtask").
WATCH_LONG_TASKS = """() => { window.longTasks = [];
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) window.longTasks.push({start: e.startTime, ms: e.duration});
  }).observe({type: 'longtask'}); }"""

# Sets the raster's time range (or both ranges) and resolves when its marks are painted.
REDRAW = """async ([x, y]) => {
  const s = window.spikeserveViewer;
  const raster = s.plots[s.containers.findIndex(c => c.dataset.plot === 'raster')];
  const before = s.drawn;
  const t0 = performance.timeOrigin + performance.now();
  if (y) raster.setScale('y', {min: y[0], max: y[1]});
  raster.setScale('x', {min: x[0], max: x[1]});
  while (s.drawn === before || s.drawn.paintedAt < t0) await new Promise(r => requestAnimationFrame(r));
  return {ms: s.drawn.paintedAt - t0, mode: s.drawn.mode, visible: s.drawn.visible};
}"""


def big_raster_request(neurons: int, steps: int, rate_hz: float) -> dict:
    """LIF neurons driven hard by Poisson input: about neurons * steps / 2 spikes at 400 Hz."""
    return {
        "name": f"{neurons:,} neurons x {steps:,} steps",
        "network": {"layers": [{"type": "lif", "name": "n", "params": {"tau_mem_inv": 200.0, "tau_syn_inv": 200.0}}]},
        "input": {"type": "poisson", "rates": rate_hz, "shape": [neurons], "steps": steps},
        "seed": 1,
    }


def measure_big_raster(page, request: dict, timeout_ms: int = 300_000) -> dict:
    """Submits ``request`` in the page and times its raster: from the result's bytes arriving to
    the first painted frame and to every plot in the page, the longest main-thread task from the
    bytes' arrival to the end, and a zoom and a reset once every plot is in."""
    page.evaluate(WATCH_LONG_TASKS)
    set_request(page, json.dumps(request))
    submit_and_wait(page, timeout_ms, until="s.drawn !== null && s.arrival && s.drawn.paintedAt > s.arrival.at")
    first = page.evaluate(
        "() => { const s = window.spikeserveViewer; return {ms: s.drawn.paintedAt - s.arrival.at, mode: s.drawn.mode,"
        " visible: s.drawn.visible, bytes: s.arrival.bytes, spikes: s.result.layers.n.spikes,"
        " arrivedAt: s.arrival.at - performance.timeOrigin}; }"
    )
    # every plot (rates, counts, intervals, the statistics table) follows the raster's first frame
    page.wait_for_function("() => { const s = window.spikeserveViewer; return s.renderedAt > s.arrival.at; }", polling=50)
    first["all_plots_ms"] = page.evaluate("window.spikeserveViewer.renderedAt - window.spikeserveViewer.arrival.at")
    # the tasks from the bytes' arrival on (the job's run and download before it are not the raster's)
    tasks = page.evaluate("([from]) => window.longTasks.filter(t => t.start + t.ms >= from).map(t => t.ms)", [first["arrivedAt"]])
    duration = page.evaluate("window.spikeserveViewer.result.steps * window.spikeserveViewer.result.dt * 1000")
    zoom = page.evaluate(REDRAW, [[duration * 0.4, duration * 0.45], [0, 200]])
    reset = page.evaluate(REDRAW, [[0, duration], [-0.5, request["input"]["shape"][0] - 0.5]])
    return {"first": first, "longest_task_ms": max(tasks, default=0.0), "zoom": zoom, "reset": reset}
