"""The viewer's result plots, driven in headless Chromium against a real `spikeserve serve`:
raster, rates, voltages, statistics, exports, zoom, and millions of spikes."""

import json
import pathlib

import numpy as np
import pytest

from tests.frontend.conftest import (
    ARTIFACTS,
    EXAMPLES,
    PLOT,
    api_result,
    open_example,
    request_text,
    screenshot,
    set_request,
    submit_and_wait,
)
from tests.frontend.timing import big_raster_request, measure_big_raster

pytestmark = pytest.mark.slow  # a browser and spikeserve serve


def test_the_seed_example_runs_and_shows_its_empty_raster(page, viewer_url: str) -> None:
    page.select_option("#examples", "seed")
    assert json.loads(request_text(page)) == json.loads((EXAMPLES / "seed.json").read_text())
    job_id = submit_and_wait(page)
    assert "succeeded" in page.text_content("#job-status")
    assert api_result(viewer_url, job_id)["layers"]["out"]["spikes"]["times"] == []
    assert page.get_attribute("[data-plot=raster]", "data-points") == "0"
    assert "did not spike" in page.text_content("#plots")
    assert page.locator("[data-plot=voltage] canvas").count() == 1
    screenshot(page, "seed-result")


def test_raster_marks_match_the_api_and_follow_the_layer_choice(page, viewer_url: str) -> None:
    page.select_option("#examples", "conv_feedforward")
    job_id = submit_and_wait(page)
    result = api_result(viewer_url, job_id)
    for layer in ("conv_lif", "hidden", "out"):
        page.select_option("#layer", layer)
        expected = str(len(result["layers"][layer]["spikes"]["times"]))
        page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{expected}'")
        assert int(expected) > 0
    screenshot(page, "conv-result")


def test_two_million_spikes_are_drawn_off_the_main_thread_and_zoom_to_exact_marks(page) -> None:
    timings = measure_big_raster(page, big_raster_request(4_000, 2_000, 400.0))
    first = timings["first"]
    assert first["spikes"] > 2_000_000 and first["visible"] == first["spikes"], "the whole run, every spike counted"
    assert first["mode"] == "density"
    assert timings["zoom"]["mode"] == "marks" and 0 < timings["zoom"]["visible"] < first["spikes"]
    assert timings["reset"]["mode"] == "density" and timings["reset"]["visible"] == first["spikes"]
    # drawing on the main thread froze the page for seconds at this size: a stall would show here
    assert timings["longest_task_ms"] < 1_000, timings
    # and the watch does see a stall of the page's own (a task of Playwright's is not one)
    page.evaluate("() => setTimeout(() => { const t0 = performance.now(); while (performance.now() - t0 < 150); })")
    page.wait_for_function("window.longTasks.some(t => t.ms >= 150)")
    screenshot(page, "two-million-spikes")
    (ARTIFACTS / "viewer-timings.json").write_text(json.dumps(timings, indent=2))


def test_every_spiking_layer_in_one_raster_coloured_by_layer_with_a_rate_per_layer(page, viewer_url: str) -> None:
    page.select_option("#examples", "conv_feedforward")
    job_id = submit_and_wait(page)
    layers = api_result(viewer_url, job_id)["layers"]
    spiking = [name for name, layer in layers.items() if "spikes" in layer]
    page.select_option("#layer", "*")
    total = sum(len(layers[name]["spikes"]["times"]) for name in spiking)
    page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{total}'")
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null && document.querySelector('[data-plot=rate]')")
    labels = page.evaluate(f"({PLOT})('rate').series.slice(1).map(s => s.label)")
    assert labels == [f"{name} (Hz)" for name in spiking]
    page.wait_for_function("document.querySelector('#summary-raster').textContent.includes('Layers from the bottom')")
    summary = page.text_content("#summary-raster")
    assert all(name in summary for name in spiking) and "Layers from the bottom" in summary
    # the first spike of the top layer, under the cursor: the readout names its layer and neuron
    top = spiking[-1]
    first = page.evaluate("window.spikeserveViewer.data.call('spikes', {limit: 200000})")
    rows_below = sum(int(np.prod(layers[name]["shape"])) for name in spiking[:-1])
    index = next(i for i, row in enumerate(first["rows"]) if row >= rows_below)
    readout = page.evaluate(
        "([t, row]) => window.spikeserveViewer.data.call('nearest', {t, row, slackMs: 0.5, rowSlack: 0.5})",
        [first["timesMs"][index], first["rows"][index]],
    )
    assert readout["layer"] == top and readout["neuron"] == first["rows"][index] - rows_below
    assert page.locator("[data-plot='spike counts']").count() == 0, "per-layer plots wait for one layer"
    screenshot(page, "all-layers")


def test_a_graph_opens_with_its_populations_in_one_raster_and_a_rate_per_population(
    page, viewer_url: str, tmp_path: pathlib.Path
) -> None:
    request = json.loads((EXAMPLES / "brunel.json").read_text())
    for node in request["network"]["nodes"]:  # a tenth of the network, a fifth of its second
        if "size" in node:
            node["size"] //= 10
        else:
            node["shape"] = [node["shape"][0] // 10]
    for edge in request["network"]["edges"]:
        if "k" in edge:
            edge["k"] //= 10
            edge["weight"] *= 10
    set_request(page, json.dumps(request | {"steps": 2000}))
    job_id = submit_and_wait(page)
    layers = api_result(viewer_url, job_id)["layers"]
    assert page.input_value("#layer") == "*"
    assert page.locator("#layer option[value='*']").text_content() == "all populations, one raster"
    total = sum(len(layers[name]["spikes"]["times"]) for name in ("E", "I"))
    assert total > 1000
    page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{total}'")
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null && document.querySelector('[data-plot=rate]')")
    assert page.evaluate(f"({PLOT})('rate').series.slice(1).map(s => s.label)") == ["E (Hz)", "I (Hz)"]
    # the raster names each population's colour: in its legend on screen, and in the exported image
    legend = page.locator("[data-plot=raster] .u-legend")
    assert legend.is_visible() and [label.strip() for label in legend.locator(".u-label").all_text_contents()] == ["E", "I"]
    strokes = "series.slice(1).map(s => s.stroke(null, 1))"
    colours = page.evaluate(f"({PLOT})('raster').{strokes}")
    assert colours == ["#2563eb", "#dc2626"] and colours == page.evaluate(f"({PLOT})('rate').{strokes}"), "as the rates"
    with page.expect_download() as download:
        page.click("button[aria-label='Save raster as PNG']")
    download.value.save_as(tmp_path / "raster.png")
    from PIL import Image

    with Image.open(tmp_path / "raster.png") as image:
        rgb = image.convert("RGB")
        below = [rgb.getpixel((x, y)) for y in range(rgb.height - 80, rgb.height) for x in range(rgb.width // 2)]
    assert (37, 99, 235) in below and (220, 38, 38) in below, "the legend under the figure has E's blue and I's red"
    screenshot(page, "graph-populations")


def test_a_plastic_edge_shows_its_final_weights_and_their_course(page, viewer_url: str) -> None:
    """Song's experiment for 2 s: the edge's control appears, the histogram counts every synapse
    between the rule's bounds as the API's final weights fall, and the course has the mean at each
    snapshot and at the end."""
    request = json.loads((EXAMPLES / "stdp_song2000.json").read_text()) | {"steps": 20000}
    request["record"]["weights"]["plastic"] = {"every": 2000}
    set_request(page, json.dumps(request))
    job_id = submit_and_wait(page, until="document.querySelector('[data-plot=\"weight course\"]') !== null")
    weights = api_result(viewer_url, job_id)["weights"]["plastic"]
    assert page.is_visible("#edge") and page.input_value("#edge") == "plastic"
    counts = page.evaluate(f"({PLOT})('weights').data[1]")
    expected, _ = np.histogram(np.minimum(weights["final"], 0.01 * (1 - 1e-9)), bins=40, range=(0.0, 0.01))
    assert sum(counts) == 1000 and np.array_equal(np.asarray(counts), expected)
    course = page.evaluate(f"({PLOT})('weight course').data")
    snapshots = np.asarray(weights["snapshots"])
    assert len(course[1]) == 11 and course[0][:2] == [1999 * 0.1, 3999 * 0.1]
    assert course[1][:10] == pytest.approx(snapshots.mean(axis=1).tolist(), rel=1e-6)
    assert course[1][10] == pytest.approx(float(np.mean(weights["final"])), rel=1e-6)
    assert "1,000 synapses of plastic between 0.00 and 0.0100" in page.text_content("#plots")
    screenshot(page, "plastic-weights")


def test_time_zoom_and_pan_are_linked_across_plots(page) -> None:
    page.select_option("#examples", "izhikevich_tonic_bursting")
    submit_and_wait(page)
    page.click("[data-zoom=in]")
    page.click("[data-pan='1']")
    names = ["raster", "rate", "spike counts", "voltage"]
    raster, rate, counts, voltage = page.evaluate(f"{names}.map({PLOT}).map(p => [p.scales.x.min, p.scales.x.max])")
    assert raster == rate == voltage, "the three time plots share one range"
    assert raster[1] - raster[0] < 2000 and raster[0] > 0, "zoomed in and moved later"
    assert counts != raster, "the count histogram has no time axis"
    page.click("[data-zoom=reset]")
    assert page.evaluate("window.spikeserveViewer.plots[0].scales.x.max") == 2000


def test_hover_reads_out_neuron_time_and_value(page) -> None:
    page.select_option("#examples", "izhikevich_tonic_bursting")
    submit_and_wait(page)
    page.locator("[data-plot=voltage] .u-over").hover()  # scrolls into view, then hovers the middle
    readout = page.locator(".plot:has([data-plot=voltage]) .readout").text_content()
    assert "neuron 0:" in readout and "neuron 1:" in readout and " ms" in readout
    raster = page.locator("[data-plot=raster] .u-over")
    raster.hover(position={"x": 60, "y": 20})
    assert "neuron" in page.locator(".plot:has([data-plot=raster]) .readout").text_content()


def test_downloads_npz_json_and_png(page, tmp_path: pathlib.Path) -> None:
    page.select_option("#examples", "izhikevich_tonic_bursting")
    job_id = submit_and_wait(page)
    with page.expect_download() as download:
        page.click("#download-npz")
    path = tmp_path / "result.npz"
    download.value.save_as(path)
    npz = np.load(path, allow_pickle=False)
    assert npz["neurons/times"].size == 85 and json.loads(str(npz["meta"]))["job_id"] == job_id
    with page.expect_download() as download:
        page.click("#download-json")
    download.value.save_as(tmp_path / "result.json")
    assert json.loads((tmp_path / "result.json").read_text())["job_id"] == job_id
    with page.expect_download() as download:
        page.click("button[aria-label='Save raster as PNG']")
    download.value.save_as(tmp_path / "raster.png")
    assert (tmp_path / "raster.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    from PIL import Image

    with Image.open(tmp_path / "raster.png") as image:
        rgba = image.convert("RGBA")
        shown = page.evaluate("document.querySelector('[data-plot=raster] canvas').getBoundingClientRect().width")
        assert rgba.width >= 2 * shown, "at least twice the size on screen"
        corners = [rgba.getpixel((0, 0)), rgba.getpixel((rgba.width - 1, rgba.height - 1))]
        assert corners == [(255, 255, 255, 255)] * 2, "on white, not transparent"
        title_row = [rgba.getpixel((x, 14)) for x in range(0, rgba.width // 3)]
        assert any(pixel[:3] != (255, 255, 255) for pixel in title_row), "the title is drawn above the plot"
        marks = sum(1 for r, g, b, _ in rgba.get_flattened_data() if b > 180 and r < 100)  # the raster's blue marks
        assert marks > 85, "the spikes are in the figure, not only the axes"


def test_every_plot_has_a_csv_of_what_it_draws(page, tmp_path: pathlib.Path) -> None:
    result = open_example(page, "izhikevich_tonic_bursting")
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null")
    spikes = result["layers"]["neurons"]["spikes"]
    dt_ms = result["dt"] * 1000

    def csv_of(title: str) -> list[str]:
        with page.expect_download() as download:
            page.click(f"button[aria-label='Save the data of {title} as CSV']")
        path = tmp_path / f"{title}.csv"
        download.value.save_as(path)
        return path.read_text().splitlines()

    raster = csv_of("raster")
    assert raster[0] == "time_ms,layer,neuron" and len(raster) == 1 + len(spikes["times"])
    assert raster[1] == f"{spikes['times'][0] * dt_ms:g},neurons,{spikes['senders'][0]}"
    rate = csv_of("rate")
    bin_ms = float(page.input_value("#bin"))
    assert rate[0] == "t (ms),neurons (Hz)" and rate[1].startswith("0,") and rate[2].startswith(f"{bin_ms:g},")
    voltage = csv_of("voltage")
    assert voltage[0] == "t (ms),neuron 0,neuron 1,threshold" and len(voltage) == 1 + result["steps"]
    counts = csv_of("spike counts")
    assert counts[0] == "count,neurons" and sum(float(line.split(",")[1]) for line in counts[1:]) == 2
    assert csv_of("isi")[0] == "ISI (ms),intervals"


def test_conv_neurons_are_named_by_channel_row_and_column(page) -> None:
    open_example(page, "conv_feedforward")  # conv_lif is [4, 16, 16]
    page.wait_for_selector("[data-plot=statistics] tbody tr")
    first = page.evaluate("[...document.querySelectorAll('[data-plot=statistics] tbody tr')].map(tr => tr.cells[0].textContent)")
    assert first[:2] == ["0 (channel 0, row 0, column 0)", "1 (channel 0, row 0, column 1)"]
    assert first[16] == "16 (channel 0, row 1, column 0)"


def time_ranges(page) -> list[list[float]]:
    """The x ranges of the raster, the rate and the voltage plot (the count histogram has no time)."""
    return page.evaluate(f"['raster', 'rate', 'voltage'].map({PLOT}).map(p => [p.scales.x.min, p.scales.x.max])")


def test_a_double_click_resets_every_time_plot_to_the_whole_run(page) -> None:
    result = open_example(page, "izhikevich_tonic_bursting")
    whole = result["steps"] * result["dt"] * 1000
    page.click("[data-zoom=in]")
    assert all(high - low < whole for low, high in time_ranges(page))
    page.locator("[data-plot=raster] .u-over").dblclick()
    assert time_ranges(page) == [[0, whole]] * 3, "raster, rate and voltage all back to the whole run (none blank)"


def test_a_change_of_layer_keeps_the_time_window(page) -> None:
    """Zoomed in on one population, the others open on the same window (all -> E -> I)."""
    open_example(page, "cuba")
    page.select_option("#layer", "*")
    page.wait_for_selector("[data-plot=raster][data-points]")
    page.click("[data-zoom=in]")
    window = page.evaluate(f"(({PLOT})('raster')).scales.x")
    window = [window["min"], window["max"]]
    for layer in ("E", "I"):
        page.select_option("#layer", layer)
        page.wait_for_function(f"(({PLOT})('raster')) && (({PLOT})('raster')).scales.x.max < {window[1] + 1e-9}")
        assert page.evaluate(f"['raster', 'rate'].map({PLOT}).map(p => [p.scales.x.min, p.scales.x.max])") == [window] * 2


WIDE = {  # 20,000 neurons, the first 2,000 driven to spike: tick values six characters wide
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {"type": "constant", "value": [0.3] * 2_000 + [0.0] * 18_000, "shape": [20_000], "steps": 200},
    "record": {"spikes": ["n"], "voltages": ["n"], "neurons": {"n": [0, 1]}},
}


def test_axis_labels_stay_clear_of_tick_values_six_characters_wide(page) -> None:
    """Each y axis is as wide as its widest tick value needs (measured in the page with the axis's
    own font), so "20,000" no longer runs into "neuron" or "intervals"."""
    set_request(page, json.dumps(WIDE))
    submit_and_wait(
        page, until="document.querySelector('[data-plot=isi]') !== null && document.querySelector('[data-plot=voltage]') !== null"
    )
    overlaps = page.evaluate(
        """() => {
        const s = window.spikeserveViewer;
        return s.plots.map((plot, i) => {
          if (!plot?.axes) return null;
          const axis = plot.axes[1];
          plot.ctx.font = axis.font[0];
          const widest = Math.max(...axis._values.map((v) => plot.ctx.measureText(String(v)).width)) / devicePixelRatio;
          return { plot: s.containers[i].dataset.plot, need: axis.ticks.size + axis.gap + widest, room: axis._size,
                   values: axis._values };
        }).filter(Boolean);
    }"""
    )
    raster = next(o for o in overlaps if o["plot"] == "raster")
    assert max(len(str(v)) for v in raster["values"]) >= 6, raster
    assert [o for o in overlaps if o["need"] > o["room"]] == [], overlaps


def test_each_rate_bin_is_drawn_over_its_own_time_span(page) -> None:
    result = open_example(page, "izhikevich_tonic_bursting")
    dt_ms = result["dt"] * 1000
    first_spike_ms = min(result["layers"]["neurons"]["spikes"]["times"]) * dt_ms
    edges, rates = page.evaluate("window.spikeserveViewer.plots[1].data.map(a => Array.from(a))")
    bin_ms = float(page.input_value("#bin"))
    assert edges[:3] == [0.0, bin_ms, 2 * bin_ms], "bins are drawn from their left edge"
    rising = next(k for k, rate in enumerate(rates) if rate > 0)
    assert edges[rising] <= first_spike_ms < edges[rising + 1], "the rate rises in the bin of the first spike"


def test_a_spike_and_the_reset_of_its_step_are_drawn_at_the_same_time(page) -> None:
    result = open_example(page, "izhikevich_tonic_bursting")
    dt_ms = result["dt"] * 1000
    spikes = result["layers"]["neurons"]["spikes"]
    step = next(t for t, sender in zip(spikes["times"], spikes["senders"], strict=True) if sender == 0)
    raster_x = page.evaluate("window.spikeserveViewer.data.call('spikes', {limit: 100000}).then(s => s.timesMs)")
    times, neuron0 = page.evaluate(f"(({PLOT})('voltage')).data.slice(0, 2).map(a => Array.from(a))")
    assert step * dt_ms in raster_x
    assert times[step] == step * dt_ms and neuron0[step] == pytest.approx(-65.0), "the reset to c shows at the spike's time"
    assert page.evaluate(f"({PLOT})('voltage').axes[1].label") == "v (mV)"


def test_the_count_histogram_has_whole_numbers_on_both_axes(page) -> None:
    for name in ("seed", "izhikevich_tonic_bursting"):
        open_example(page, name)
        splits = page.evaluate(f"({PLOT})('spike counts').axes.map(a => a._splits)")
        assert all(float(v).is_integer() for axis in splits for v in axis), (name, splits)


def test_a_bin_below_the_time_step_is_not_used_silently(page) -> None:
    open_example(page, "izhikevich_tonic_bursting")
    assert page.locator("#bin-note").is_hidden()
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null")
    page.evaluate(f"names => {{ window.before = names.map({PLOT}); }}", ["raster", "rate", "voltage"])
    page.fill("#bin", "0")
    page.dispatch_event("#bin", "change")
    page.wait_for_function("document.querySelector('#bin-note').textContent !== ''")
    assert page.text_content("#bin-note") == "A bin must be at least the time step: using 1 ms."
    page.wait_for_function("document.querySelector('[data-plot=rate]').textContent.includes('bin 1 ms')")
    same = page.evaluate(f"names => names.map({PLOT}).map((plot, k) => plot === window.before[k])", ["raster", "rate", "voltage"])
    assert same == [True, False, True], "a new bin redraws the rate plot only"


def test_a_first_visit_opens_an_example_that_spikes_and_shows_its_traces(page, viewer_url: str) -> None:
    """The page starts from a request that runs and spikes, so a first Submit shows a raster; it
    records ten neurons' voltages, of which eight (the most one plot shows) are drawn, and says so."""
    assert page.input_value("#examples") == "poisson_population"
    assert json.loads(request_text(page)) == json.loads((EXAMPLES / "poisson_population.json").read_text())
    job_id = submit_and_wait(page)
    spikes = len(api_result(viewer_url, job_id)["layers"]["population"]["spikes"]["times"])
    assert spikes > 100_000
    page.wait_for_selector("[data-plot=raster][data-points]")
    assert page.get_attribute("[data-plot=raster]", "data-points") == str(spikes)
    page.fill("#neurons", ", ".join(map(str, range(10))))
    page.dispatch_event("#neurons", "change")
    assert page.text_content("#neurons-note") == "At most 8 traces at once: showing 0, 1, 2, 3, 4, 5, 6, 7."
    labels = page.evaluate(f"({PLOT})('voltage').series.map(s => s.label)")
    assert [label for label in labels if str(label).startswith("neuron")] == [f"neuron {k}" for k in range(8)], labels


def test_voltage_neurons_that_were_not_recorded_are_named(page) -> None:
    open_example(page, "izhikevich_tonic_bursting")
    page.fill("#neurons", "abc, 99, 1")
    page.dispatch_event("#neurons", "change")
    assert page.text_content("#neurons-note") == "Not recorded (recorded: 0, 1): abc, 99."
    assert page.evaluate(f"({PLOT})('voltage').series.slice(1, 2).map(s => s.label)") == ["neuron 1"]
    page.fill("#neurons", "abc")
    page.dispatch_event("#neurons", "change")
    assert page.text_content("#neurons-note") == "Not recorded (recorded: 0, 1): abc; showing 0, 1."


def test_per_neuron_statistics_and_the_isi_histogram_match_the_spikes(page, viewer_url: str, tmp_path: pathlib.Path) -> None:
    result = open_example(page, "conv_feedforward")
    layer = result["layers"]["hidden"]
    dt_ms, duration_s = result["dt"] * 1000, result["steps"] * result["dt"]
    page.select_option("#layer", "hidden")
    page.wait_for_selector("[data-plot=statistics] table")
    times = np.asarray(layer["spikes"]["times"]) * dt_ms
    senders = np.asarray(layer["spikes"]["senders"])
    expected = {}
    for neuron in range(32):
        intervals = np.diff(times[senders == neuron])
        cv = float(np.std(intervals) / np.mean(intervals)) if intervals.size >= 2 else None
        expected[neuron] = ((senders == neuron).sum(), (senders == neuron).sum() / duration_s, cv)
    cells = "tr => Array.from(tr.cells).map(c => c.textContent)"
    rows = page.evaluate(f"Array.from(document.querySelectorAll('[data-plot=statistics] tbody tr')).map({cells})")
    assert len(rows) == 32
    for neuron, count, rate, _, cv in rows:
        want_count, want_rate, want_cv = expected[int(neuron)]
        assert int(count) == want_count and float(rate) == pytest.approx(want_rate, abs=0.005)
        assert (cv == "\N{EN DASH}") if want_cv is None else float(cv) == pytest.approx(want_cv, abs=0.0005)
    all_intervals = sum(max(0, int(c) - 1) for _, c, *_ in rows)
    assert page.get_attribute("[data-plot=isi]", "data-points") == str(all_intervals)
    page.click("[data-plot=statistics] button.sort[data-key=rate]")  # sorts by rate, highest first
    rates = page.evaluate(
        "Array.from(document.querySelectorAll('[data-plot=statistics] tbody tr')).map(tr => Number(tr.cells[2].textContent))"
    )
    assert rates == sorted(rates, reverse=True) and rates[0] > rates[-1]
    with page.expect_download() as download:
        page.click("[data-plot=statistics] .toolbar button")
    path = tmp_path / "statistics.csv"
    download.value.save_as(path)
    lines = path.read_text().splitlines()
    assert lines[0] == "neuron,count,rate,meanIsi,cv" and len(lines) == 33


def test_the_raster_zooms_on_its_neuron_axis_and_a_double_click_brings_all_back(page) -> None:
    open_example(page, "conv_feedforward")  # 1,024 neurons in its first layer
    y_scale = f"(({PLOT})('raster')).scales.y"
    time_scale = f"(({PLOT})('raster')).scales.x"
    full = page.evaluate(f"[{y_scale}.min, {y_scale}.max]")
    time_before = page.evaluate(f"[{time_scale}.min, {time_scale}.max]")
    page.click("[data-neurons=in]")
    page.click("[data-neurons=in]")
    zoomed = page.evaluate(f"[{y_scale}.min, {y_scale}.max]")
    assert zoomed[1] - zoomed[0] == pytest.approx((full[1] - full[0]) / 4), "each step halves the neurons shown"
    assert page.evaluate(f"[{time_scale}.min, {time_scale}.max]") == time_before, "time stays as it was"
    page.click("[data-neurons=out]")
    assert page.evaluate(f"{y_scale}.max - {y_scale}.min") == pytest.approx((full[1] - full[0]) / 2)
    page.locator("[data-plot=raster] .u-over").dblclick()
    assert page.evaluate(f"[{y_scale}.min, {y_scale}.max]") == full
    page.click("[data-neurons=in]")
    page.click("[data-neurons=all]")
    assert page.evaluate(f"[{y_scale}.min, {y_scale}.max]") == full
    page.click("[data-neurons=in]")
    page.click("[data-zoom=in]")
    page.click("[data-zoom=reset]")
    assert page.evaluate(f"[{y_scale}.min, {y_scale}.max]") == full, "Reset restores the neurons too, as a double-click does"
    assert page.evaluate(f"[{time_scale}.min, {time_scale}.max]") == time_before
