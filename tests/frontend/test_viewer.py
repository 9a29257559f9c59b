"""The viewer's result plots, driven in headless Chromium against a real `spikeserve serve`:
raster, rates, voltages, statistics, exports, zoom, and millions of spikes."""

import json
import os
import pathlib
import subprocess
import sys
from xml.etree import ElementTree

import httpx
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

SVG = "{http://www.w3.org/2000/svg}"  # the namespace of an SVG document's elements


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


def brunel_tenth() -> dict:
    """Brunel's network at a tenth of its size (in-degrees too, weights ten times), a fifth of its second."""
    request = json.loads((EXAMPLES / "brunel.json").read_text())
    for node in request["network"]["nodes"]:
        if "size" in node:
            node["size"] //= 10
        else:
            node["shape"] = [node["shape"][0] // 10]
    for edge in request["network"]["edges"]:
        if "k" in edge:
            edge["k"] //= 10
            edge["weight"] *= 10
    return request | {"steps": 2000}


@pytest.fixture(scope="module")
def brunel_job(viewer_url: str) -> str:
    """Brunel's network at a tenth, run once through the API for the tests that look at its result."""
    job_id = httpx.post(f"{viewer_url}/api/v1/jobs", json=brunel_tenth(), timeout=30).json()["id"]
    status = httpx.get(f"{viewer_url}/api/v1/jobs/{job_id}", params={"wait": 60}, timeout=90).json()
    assert status["status"] == "succeeded", status
    return job_id


def show_job(page, job_id: str) -> None:
    """Opens a job's result by its address, as a shared link does, and waits for its first plots."""
    page.goto(f"{page.url.split('#')[0]}#/jobs/{job_id}")
    page.wait_for_function(
        f"window.spikeserveViewer.job === '{job_id}' && window.spikeserveViewer.result !== null"
        " && document.querySelector('[data-plot]') !== null"
    )


def test_a_graph_opens_with_its_populations_in_one_raster_and_a_rate_per_population(
    page, viewer_url: str, tmp_path: pathlib.Path
) -> None:
    set_request(page, json.dumps(brunel_tenth()))
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


def population_measures(layer: dict, neurons: int, steps: int, bin_steps: int, window_steps: int) -> dict:
    """The populations table's measures the obvious way, with numpy: a count per neuron and window
    (or bin), their variances over the whole windows, each neuron's intervals."""
    times, senders = np.asarray(layer["spikes"]["times"]), np.asarray(layer["spikes"]["senders"])

    def counted(width: int) -> np.ndarray:
        slots = steps // width
        counts = np.zeros((neurons, slots))
        inside = times // width < slots
        np.add.at(counts, (senders[inside], times[inside] // width), 1)
        return counts

    windows = counted(window_steps)
    spiked = windows.mean(axis=1) > 0
    bins = counted(bin_steps)
    cvs = [np.std(i) / np.mean(i) for n in range(neurons) if (i := np.diff(np.sort(times[senders == n]))).size >= 2]
    return {
        "spikes": times.size,
        "cv": float(np.mean(cvs)),
        "fano": float(np.mean(windows.var(axis=1)[spiked] / windows.mean(axis=1)[spiked])),
        "chi": float(np.sqrt(bins.mean(axis=0).var() / bins.var(axis=1).mean())),
    }


def rate_spectrum(layer: dict, neurons: int, steps: int, bin_steps: int, dt_s: float) -> tuple[np.ndarray, np.ndarray]:
    """The population rate's power spectral density by numpy's FFT: mean removed, zeros padded
    to a power of two, one-sided (2 bin |X|^2 / bins)."""
    bins = steps // bin_steps
    times = np.asarray(layer["spikes"]["times"])
    rate = np.bincount(times[times // bin_steps < bins] // bin_steps, minlength=bins) / (neurons * bin_steps * dt_s)
    padded = 1 << (bins - 1).bit_length()
    power = 2 * bin_steps * dt_s * np.abs(np.fft.rfft(rate - rate.mean(), n=padded)) ** 2 / bins
    return np.arange(1, padded // 2 + 1) / (padded * bin_steps * dt_s), power[1:]


def test_each_population_has_its_rate_cv_fano_factor_synchrony_and_spectrum(page, viewer_url: str, brunel_job: str) -> None:
    show_job(page, brunel_job)
    result = api_result(viewer_url, brunel_job)
    page.wait_for_function("document.querySelector('[data-plot=autocorrelation]')")
    cells = "tr => Array.from(tr.cells).map(c => c.textContent)"
    rows = page.evaluate(f"Array.from(document.querySelectorAll('[data-plot=populations] tbody tr')).map({cells})")
    assert [row[0] for row in rows] == ["E", "I"]
    # 0.1 ms steps: the rate plot's bin of 5 ms is 50; the Fano window a tenth of this 200 ms run, 200
    dt_s, steps = result["dt"], result["steps"]
    for (name, neurons, spikes, rate, cv, fano, chi), size in zip(rows, (800, 200), strict=True):
        want = population_measures(result["layers"][name], size, steps, 50, 200)
        assert int(neurons) == size and int(spikes.replace(",", "")) == want["spikes"] > 1000
        assert float(rate) == pytest.approx(want["spikes"] / (size * steps * dt_s), abs=0.005)
        assert float(cv) == pytest.approx(want["cv"], abs=0.0005) and float(fano) == pytest.approx(want["fano"], abs=0.0005)
        assert float(chi) == pytest.approx(want["chi"], abs=0.0005) and 0 < want["chi"] < 1
    # the spectrum of each population's rate, bin by bin, as numpy's FFT of the same counts
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null")
    xs, *powers = page.evaluate(f"({PLOT})('spectrum').data.map(a => Array.from(a))")
    for name, size, drawn in zip(("E", "I"), (800, 200), powers, strict=True):
        frequencies, power = rate_spectrum(result["layers"][name], size, steps, 10, dt_s)  # a bin of 1 ms: 500 Hz
        np.testing.assert_allclose(xs, frequencies)
        np.testing.assert_allclose(drawn, power, rtol=1e-9, atol=1e-12 * power.max())
        peak = frequencies[np.argmax(power)]
        assert f"{name}: peak at {peak:.1f} Hz" in page.text_content("#summary-spectrum")
    lags, *correlations = page.evaluate(f"({PLOT})('autocorrelation').data.map(a => Array.from(a))")
    assert lags[:3] == [0, 1, 2] and lags[-1] == 199 and all(c[0] == 1 for c in correlations)  # the 200 ms run's 200 bins
    for correlation, (name, size) in zip(correlations, (("E", 800), ("I", 200)), strict=True):
        times = np.asarray(result["layers"][name]["spikes"]["times"])
        rate = np.bincount(times // 10, minlength=200)[:200] / size
        y = rate - rate.mean()
        np.testing.assert_allclose(correlation[:50], [np.dot(y[: 200 - k], y[k:]) / np.dot(y, y) for k in range(50)], atol=1e-12)
    # with several populations, their intervals' and CVs' histograms overlaid, each summing to one
    for plot in ("isi by population", "cv by population"):
        _, *shares = page.evaluate(f"({PLOT})('{plot}').data.map(a => Array.from(a))")
        assert len(shares) == 2 and all(sum(share[:-1]) == pytest.approx(1) for share in shares)
    screenshot(page, "populations")


def saved_svg(page, plot: str, tmp_path: pathlib.Path, name: str | None = None) -> ElementTree.Element:
    """The plot's SVG export, parsed; ``name``: the file name the page must give it."""
    with page.expect_download() as download:
        page.click(f"button[aria-label='Save {plot} as SVG']")
    if name is not None:
        assert download.value.suggested_filename == name
    path = tmp_path / f"{plot}.svg"
    download.value.save_as(path)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / f"{plot}.svg").write_bytes(path.read_bytes())  # to look at
    return ElementTree.parse(path).getroot()


def test_svg_exports_draw_the_data_as_shapes_with_the_ticks_and_legend_on_screen(
    page, viewer_url: str, brunel_job: str, tmp_path: pathlib.Path
) -> None:
    show_job(page, job_id := brunel_job)
    layers = api_result(viewer_url, job_id)["layers"]
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null && document.querySelector('[data-plot=spectrum]')")
    raster = saved_svg(page, "raster", tmp_path, f"spikeserve-{job_id[:8]}-all-layers-raster.svg")
    squares = [path for path in raster.iter(f"{SVG}path") if path.get("class") == "spikes"]
    spikes = {path.get("fill"): int(path.get("data-spikes")) for path in squares}
    counts = {name: len(layers[name]["spikes"]["times"]) for name in ("E", "I")}
    assert spikes == {"#2563eb": counts["E"], "#dc2626": counts["I"]}, "a square per spike, E blue and I red"
    texts = [text.text for text in raster.iter(f"{SVG}text")]
    assert texts[0] == "Spike raster" and "E" in texts and "I" in texts and any(f"spikeserve job {job_id}" in t for t in texts)
    on_screen = page.evaluate(f"({PLOT})('raster').axes.map(a => (a._values || []).filter(v => v != null))")
    for axis, shown in zip(("x", "y"), on_screen, strict=True):
        group = raster.find(f"{{*}}g[@data-axis='{axis}']")
        assert [t.text for t in group.findall("{*}text") if t.get("class") != "label"] == shown
    # the rate: a stepped line per population with a point per bin edge, at the plot's own positions
    rate = saved_svg(page, "rate", tmp_path, f"spikeserve-{job_id[:8]}-all-layers-rate.svg")
    lines = [path for path in rate.iter(f"{SVG}path") if path.get("class") == "series"]
    assert [line.get("stroke") for line in lines] == ["#2563eb", "#dc2626"]
    assert all(int(line.get("data-points")) == 41 for line in lines), "40 bins of 5 ms and the last edge"
    first_y = page.evaluate(f"(p => p.valToPos(p.data[1][0], 'y') + p.bbox.top / devicePixelRatio + 22)(({PLOT})('rate'))")
    assert float(lines[0].get("d").split()[1].split("H")[0]) == pytest.approx(first_y, abs=0.01)
    spectrum = saved_svg(page, "spectrum", tmp_path)
    assert len([p for p in spectrum.iter(f"{SVG}path") if p.get("class") == "series"]) == 2
    # the matplotlib script draws the same figure from the NPZ, as a PDF
    for button, name in (("#download-script", "script.py"), ("#download-npz", f"{job_id}.npz")):
        with page.expect_download() as download:
            page.click(button)
        download.value.save_as(tmp_path / name)
    inspect = (
        "import json, runpy, sys; import matplotlib.pyplot as plt; runpy.run_path('script.py'); axes = plt.gcf().axes; "
        "print(json.dumps([[len(c.get_offsets()) for c in axes[0].collections], [p.get_label() for p in axes[1].patches]]))"
    )
    headless = {**os.environ, "MPLBACKEND": "Agg"}
    done = subprocess.run([sys.executable, "-c", inspect], cwd=tmp_path, capture_output=True, text=True, timeout=99, env=headless)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / f"{job_id}-figure.pdf").read_bytes()[:5] == b"%PDF-"
    drawn = json.loads(done.stdout.splitlines()[-1])
    assert drawn == [[counts["E"], counts["I"]], ["E", "I"]], "a mark per spike, a rate per population"


def test_the_network_is_drawn_with_every_node_and_labelled_edge_and_a_click_shows_a_population(page, brunel_job: str) -> None:
    request = brunel_tenth()
    show_job(page, brunel_job)
    page.wait_for_selector("#network-panel:not([hidden]) svg")
    nodes = page.evaluate(
        "Array.from(document.querySelectorAll('#network-diagram .node')).map(g => [g.dataset.node, g.classList[1]])"
    )
    want = {node["name"]: "input" if node["type"] == "poisson" else "population" for node in request["network"]["nodes"]}
    assert dict(nodes) == want and len(nodes) == 4
    edges = page.evaluate(
        "Array.from(document.querySelectorAll('#network-diagram .edge'))"
        ".map(g => [g.dataset.from, g.dataset.to, g.querySelector('.edge-label')?.textContent])"
    )
    assert sorted((a, b) for a, b, _ in edges) == sorted((e["from"], e["to"]) for e in request["network"]["edges"])
    labels = {(a, b): label for a, b, label in edges}
    assert labels[("E", "I")] == "fixed in degree k=80, w 1, d 1.5 ms"  # weights ten times at a tenth of the in-degree
    assert labels[("I", "E")] == "fixed in degree k=20, w -5, d 1.5 ms"
    assert labels[("drive_E", "E")] == "one to one, w 0.1, d 0 ms"
    radius = "g => [g.dataset.node, Number(g.querySelector('circle').getAttribute('r'))]"
    sizes = page.evaluate(f"Object.fromEntries(Array.from(document.querySelectorAll('#network-diagram .node')).map({radius}))")
    assert sizes["E"] > sizes["I"] and sizes["drive_E"] == sizes["E"], "circles grow with the neurons"
    assert page.input_value("#layer") == "*"
    page.click("#network-diagram .node[data-node=I]")
    page.wait_for_function("document.querySelector('#layer').value === 'I' && document.querySelector('[data-plot=statistics]')")
    page.focus("#network-diagram .node[data-node=E]")
    page.keyboard.press("Enter")
    page.wait_for_function("document.querySelector('#layer').value === 'E'")
    assert page.get_attribute("#network-diagram .node[data-node=E] circle", "stroke-width") == "3", "the population shown"
    screenshot(page, "network-diagram")


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
    submit_and_wait(page)  # the first plots are there; the later ones may still be coming
    page.click("[data-zoom=in]")
    page.click("[data-pan='1']")
    page.wait_for_function("window.spikeserveViewer.renderedAt !== null")  # a plot come since joins the zoom
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
        # both plots drawn (the rate plot comes after the raster), the raster on the window
        page.wait_for_function(
            f"['raster', 'rate'].every(p => ({PLOT})(p)) && (({PLOT})('raster')).scales.x.max < {window[1] + 1e-9}"
        )
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


def test_a_first_visit_opens_an_example_that_spikes_and_shows_its_traces(page, viewer_url: str, tmp_path: pathlib.Path) -> None:
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
    page.wait_for_function(f"({PLOT})('voltage')?.series.length > 8")  # redrawn with the new neurons
    labels = page.evaluate(f"({PLOT})('voltage').series.map(s => s.label)")
    assert [label for label in labels if str(label).startswith("neuron")] == [f"neuron {k}" for k in range(8)], labels
    # too many spikes for a shape each: the raster's SVG holds the density image as drawn
    svg = saved_svg(page, "raster", tmp_path)
    assert svg.find("{*}g/{*}image").get("href").startswith("data:image/png;base64,")
    assert svg.find(".//{*}path[@class='spikes']") is None


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
