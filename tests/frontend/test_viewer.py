"""The browser viewer, driven in headless Chromium against a real `spikeserve serve`."""

import json
import pathlib
from collections.abc import Iterator

import httpx
import numpy as np
import pytest

from tests.frontend.conftest import ARTIFACTS, request_text, screenshot, serving, set_request, submit_and_wait
from tests.frontend.timing import big_raster_request, measure_big_raster
from worker.settings import hash_key
from worker.simulation.nir_export import network_to_nir_bytes
from worker.simulation.plan import parse_request

pytestmark = pytest.mark.slow  # a browser and spikeserve serve

EXAMPLES = pathlib.Path(__file__).parents[2] / "examples"
VIEWER_KEY = "ss_viewer_test_key_0123456789"
# the uPlot instance of a result plot, by the name its container carries (data-plot)
PLOT = "(name) => { const s = window.spikeserveViewer; return s.plots[s.containers.findIndex(c => c.dataset.plot === name)]; }"
LONG = {  # 50,000 silent LIF neurons for 400,000 steps: about 10 s of work, in chunks of 30 ms
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {"type": "constant", "value": 0.1, "shape": [50_000], "steps": 400_000},
}


def api_result(viewer_url: str, job_id: str) -> dict:
    return httpx.get(f"{viewer_url}/api/v1/jobs/{job_id}/result", timeout=30).json()


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


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_broken_request_shows_the_field_and_message_on_its_line(page) -> None:
    broken = json.loads((EXAMPLES / "seed.json").read_text())
    broken["network"]["layers"][0]["in_features"] = 6
    text = json.dumps(broken, indent=2)
    set_request(page, text)
    page.click("#validate")
    item = page.locator("#validation li").first
    item.wait_for()
    line = line_of(text, '"in_features"')
    assert item.text_content() == f"network.layers[0].in_features: is 6, but the input gives shape [5] (line {line})"
    marked = page.evaluate("window.spikeserveViewer.editor.diagnostics()")
    assert {"line": line, "message": "is 6, but the input gives shape [5]"} in marked, "the editor marks the line too"
    set_request(page, "{ not json")
    page.click("#submit")
    assert "not valid JSON" in page.locator("#validation li").first.text_content()
    screenshot(page, "validation-error")


def test_the_editor_marks_every_schema_error_at_once_on_its_line(page) -> None:
    request = json.loads((EXAMPLES / "seed.json").read_text())
    request["dt"] = "fast"
    request["stepz"] = 10
    request["network"]["layers"][1]["params"] = {"v_th": "high"}
    request["seed"] = -1
    request["input"]["shape"] = "wide"
    text = json.dumps(request, indent=2)
    set_request(page, text)
    page.wait_for_function("window.spikeserveViewer.editor.diagnostics().length >= 5", timeout=10_000)
    lines = {d["line"] for d in page.evaluate("window.spikeserveViewer.editor.diagnostics()")}
    for needle in ('"dt"', '"stepz"', '"v_th"', '"seed"', '"shape": "wide"'):  # inside a layer and the input too
        assert line_of(text, needle) in lines, (needle, lines)
    assert page.locator(".cm-lint-marker-error").count() >= 5, "each in the gutter"
    screenshot(page, "editor-schema-errors")


def test_every_example_is_clean_in_the_editor(page) -> None:
    diagnostics = "window.spikeserveViewer.editor.diagnostics().length"
    for name in page.evaluate("Object.keys(window.spikeserveViewer.examples)"):
        set_request(page, '{"dt": "fast"}')
        page.wait_for_function(f"{diagnostics} > 0")  # the linter has run on a wrong request...
        page.select_option("#examples", name)
        page.wait_for_function(f"{diagnostics} === 0", timeout=10_000)  # ...and again, on the example


def test_the_editor_completes_field_names_from_the_schema(page) -> None:
    set_request(page, '{\n  "network": {"layers": []},\n  \n}')
    page.click(".cm-content")
    page.keyboard.press("Control+End")
    page.keyboard.press("ArrowUp")
    page.keyboard.press("End")
    page.keyboard.type('"')
    page.keyboard.press("Control+Space")
    options = page.locator(".cm-tooltip-autocomplete li")
    options.first.wait_for()
    labels = options.all_text_contents()
    assert any(label.startswith("record") for label in labels) and any(label.startswith("seed") for label in labels), labels
    assert not any(label.startswith("network") for label in labels), "a field the object has is not offered again"


def test_the_form_of_common_fields_edits_the_json(page) -> None:
    page.select_option("#examples", "seed")
    page.click("#quick-form summary")
    seed = page.locator("#form-fields label", has_text="seed")
    seed.wait_for()
    page.fill(f"#{seed.get_attribute('for')}", "7")
    page.dispatch_event(f"#{seed.get_attribute('for')}", "change")
    assert json.loads(request_text(page))["seed"] == 7
    name = page.locator("#form-fields label", has_text="name").first.get_attribute("for")
    page.fill(f"#{name}", "tonic, seed 7")
    page.dispatch_event(f"#{name}", "change")
    assert json.loads(request_text(page))["name"] == "tonic, seed 7"
    threshold = page.locator("#form-fields label", has_text="out: v_th").get_attribute("for")
    assert page.get_attribute(f"#{threshold}", "placeholder") == "1", "the default shows where the request has none"
    page.fill(f"#{threshold}", "0.5")
    page.dispatch_event(f"#{threshold}", "change")
    assert json.loads(request_text(page))["network"]["layers"][1]["params"] == {"v_th": 0.5}
    screenshot(page, "request-form")


def test_a_long_job_can_be_cancelled(page) -> None:
    set_request(page, json.dumps(LONG))
    page.click("#submit")
    page.wait_for_function("document.querySelector('#job-status').textContent.includes('running')", timeout=60_000)
    progress = page.locator("#progress")
    assert progress.is_visible()
    # after a chunk or two, the time it has run and an estimate of what is left
    eta = "/running \\d+ s, about .+ left/.test(document.querySelector('#job-status').textContent)"
    page.wait_for_function(eta, timeout=30_000)
    screenshot(page, "running-with-eta")
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent.includes('cancelled')", timeout=60_000)
    page.wait_for_selector("#jobs .state-cancelled")  # the list refreshes when the job ends
    screenshot(page, "cancelled")


LIVE = {  # LONG's silent population for 100,000 steps (a few seconds), its first 20 neurons driven to spike
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {
        "type": "constant",
        "value": [0.2 + 0.01 * k for k in range(20)] + [0.1] * 49_980,
        "shape": [50_000],
        "steps": 100_000,
    },
}


def test_the_raster_grows_while_the_job_runs_then_shows_the_whole_result(page, viewer_url: str) -> None:
    set_request(page, json.dumps(LIVE))
    page.click("#submit")
    page.wait_for_function(
        "window.spikeserveViewer.live?.count > 0 && document.querySelector('[data-plot=raster]')", timeout=60_000
    )
    first = int(page.get_attribute("[data-plot=raster]", "data-points"))
    assert page.text_content("#summary").startswith("Live: layer n,")
    points = "Number(document.querySelector('[data-plot=raster]')?.dataset.points)"
    page.wait_for_function(f"{points} > {first} && window.spikeserveViewer.result === null", timeout=60_000)
    # drawn again with more spikes, before the job ended
    screenshot(page, "live-raster")
    page.wait_for_function("window.spikeserveViewer.result !== null", timeout=120_000)
    job_id = page.evaluate("window.spikeserveViewer.job")
    spikes = len(api_result(viewer_url, job_id)["layers"]["n"]["spikes"]["times"])
    page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{spikes}'")
    assert spikes > first > 0


def test_a_nir_upload_runs_like_the_layers_it_holds(page, viewer_url: str, tmp_path: pathlib.Path) -> None:
    request = json.loads((EXAMPLES / "conv_feedforward.json").read_text())
    graph = tmp_path / "conv.nir"
    graph.write_bytes(network_to_nir_bytes(*parse_request(request)))
    page.select_option("#examples", "conv_feedforward")
    page.set_input_files("#nir-file", str(graph))
    page.wait_for_function("document.querySelector('#validation').textContent.includes('Valid: 8 layers')")
    assert "conv.nir" in page.text_content("#nir-note")
    job_id = submit_and_wait(page)
    served = page.evaluate("fetch('/api/v1/jobs/' + window.spikeserveViewer.job + '/request').then(r => r.json())")
    assert "nir" in served["network"], "the job ran the uploaded graph"
    assert len(api_result(viewer_url, job_id)["layers"]["out"]["spikes"]["times"]) == 420


def test_a_narrow_window_has_no_sideways_scrolling(page) -> None:
    page.set_viewport_size({"width": 420, "height": 900})
    page.select_option("#examples", "izhikevich_tonic_bursting")
    submit_and_wait(page)
    page.evaluate("window.dispatchEvent(new Event('resize'))")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1")
    screenshot(page, "narrow")


def test_every_control_is_labelled_and_reachable_by_keyboard(page) -> None:
    unlabelled = page.evaluate(
        """() => [...document.querySelectorAll('input, select, textarea, button')]
             .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.textContent.trim())
             .map(el => el.id || el.outerHTML)"""
    )
    assert unlabelled == []
    page.focus("#examples")
    page.keyboard.press("ArrowDown")  # choose an example with the keyboard
    assert page.input_value("#examples") != ""
    page.focus("#submit")
    page.keyboard.press("Enter")
    page.wait_for_selector("#result-panel:not([hidden])", timeout=60_000)


AXE = pathlib.Path(__file__).parents[2] / "frontend" / "node_modules" / "axe-core" / "axe.min.js"


def axe_violations(page) -> list[str]:
    """What axe-core (Deque's accessibility rules, WCAG 2.1 A and AA) finds in the page as it is."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}))"
        ".violations.map(v => `${v.id}: ${v.nodes.map(n => n.target.join(' ')).join(', ')}`)"
    )
    return found


def test_axe_finds_no_accessibility_violations_in_the_editor_or_a_result(browser, viewer_url: str) -> None:
    for width, height in ((1440, 900), (390, 844)):
        context = browser.new_context(viewport={"width": width, "height": height})
        page = context.new_page()
        page.goto(viewer_url)
        page.wait_for_function("document.querySelector('#examples').options.length > 1")
        page.click("#quick-form summary")
        assert axe_violations(page) == [], f"the editor at {width}x{height}"
        page.select_option("#examples", "conv_feedforward")
        submit_and_wait(page)
        page.wait_for_function("window.spikeserveViewer.renderedAt !== null")
        assert axe_violations(page) == [], f"a result at {width}x{height}"
        if width < 500:  # the phone: every control a finger can hit
            small = page.evaluate(
                """() => [...document.querySelectorAll('button, select, input')].filter(el => el.offsetParent !== null)
                     .map(el => el.getBoundingClientRect()).filter(r => r.width < 44 || r.height < 44).length"""
            )
            assert small == 0, f"{small} controls under 44 px on the phone"
            screenshot(page, "phone-result")
        context.close()


def test_the_api_key_is_kept_for_the_browser_session_only(page) -> None:
    page.fill("#key", "ss_some_key")
    page.click("#key-form button")
    assert page.evaluate("sessionStorage.getItem('spikeserve.key')") == "ss_some_key"
    assert page.evaluate("localStorage.length") == 0
    page.reload()
    assert page.input_value("#key") == "ss_some_key"
    page.fill("#key", "")
    page.click("#key-form button")


SWEEP = {  # 3 x 2 points of a small Poisson-driven population
    "base": {
        "network": {
            "layers": [
                {
                    "type": "linear",
                    "name": "fc",
                    "in_features": 20,
                    "out_features": 30,
                    "weight": {"init": "uniform", "low": 0, "high": 0.4},
                },
                {"type": "lif", "name": "out"},
            ]
        },
        "input": {"type": "poisson", "rates": 20.0, "shape": [20], "steps": 500},
    },
    "axes": [{"path": "input.rates", "values": [10.0, 40.0, 80.0]}, {"path": "seed", "values": [0, 1]}],
}


def test_a_sweep_shows_its_tuning_curve_heat_map_and_opens_a_point(page, viewer_url: str) -> None:
    set_request(page, json.dumps(SWEEP))
    page.click("#submit")
    page.wait_for_function("window.spikeserveSweep.status?.status === 'succeeded'", timeout=60_000)
    page.wait_for_selector("[data-plot=heatmap][data-cells='6']")
    assert page.get_attribute("[data-plot=tuning]", "data-points") == "3"
    assert "6 of 6 points ended (6 succeeded" in page.text_content("#sweep-status")
    sweep_id = page.evaluate("window.spikeserveSweep.id")
    table = httpx.get(f"{viewer_url}/api/v1/sweeps/{sweep_id}/summary", timeout=30).json()
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    rates = [sum(r["out.rate_hz"] for r in rows if r["input.rates"] == x) / 2 for x in (10.0, 40.0, 80.0)]
    drawn = page.evaluate("window.spikeserveSweep.plots[0].data[1].slice()")
    assert drawn == pytest.approx(rates) and rates[0] < rates[2], "the curve is the mean rate per rate, rising"
    screenshot(page, "sweep")
    # the heat map's cell for rate 40 (second column) and seed 1 (second row) opens that point
    canvas = page.locator("[data-plot=heatmap] canvas")
    size = canvas.bounding_box()
    left, top, right, bottom = 110, 26, size["width"] - 70, size["height"] - 34  # the map's box in plots.js
    canvas.click(position={"x": left + 1.5 * (right - left) / 3, "y": top + 1.5 * (bottom - top) / 2})
    point = next(r for r in rows if r["input.rates"] == 40.0 and r["seed"] == 1)
    page.wait_for_function(f"window.spikeserveViewer.job === '{point['job_id']}' && window.spikeserveViewer.result !== null")
    page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{point['out.spikes']}'")
    assert point["out.spikes"] > 0


# --- the bugs of the first viewer, each with the check that failed then -------------------------


def open_example(page, name: str) -> dict:
    """Runs an example in the page; returns its result as the API's JSON."""
    page.select_option("#examples", name)
    job_id = submit_and_wait(page)
    return api_result(page.url.split("#")[0].rstrip("/"), job_id)


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
    page.fill("#bin", "0")
    page.dispatch_event("#bin", "change")
    assert page.text_content("#bin-note") == "A bin must be at least the time step: using 1 ms."
    assert "bin 1 ms" in page.text_content("[data-plot=rate]")


def test_voltage_neurons_that_were_not_recorded_are_named(page) -> None:
    open_example(page, "izhikevich_tonic_bursting")
    page.fill("#neurons", "abc, 99, 1")
    page.dispatch_event("#neurons", "change")
    assert page.text_content("#neurons-note") == "Not recorded (recorded: 0, 1): abc, 99."
    assert page.evaluate(f"({PLOT})('voltage').series.slice(1, 2).map(s => s.label)") == ["neuron 1"]
    page.fill("#neurons", "abc")
    page.dispatch_event("#neurons", "change")
    assert page.text_content("#neurons-note") == "Not recorded (recorded: 0, 1): abc; showing 0, 1."


@pytest.fixture(scope="module")
def keyed_viewer_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with serving(tmp_path_factory.mktemp("keyed"), SPIKESERVE_API_KEY_HASHES=json.dumps([hash_key(VIEWER_KEY)])) as url:
        yield url


def test_a_server_that_needs_a_key_says_so_and_the_right_key_clears_the_refusal(browser, keyed_viewer_url: str) -> None:
    context = browser.new_context()
    page = context.new_page()
    page.goto(keyed_viewer_url)
    page.wait_for_function("document.querySelector('#key').placeholder === 'this server needs a key'")
    assert page.locator("#error").is_visible() and "HTTP 401" in page.text_content("#error")
    page.fill("#key", "ss_wrong_key")
    page.click("#key-form button")
    page.wait_for_function("document.querySelector('#jobs').textContent.includes('Could not list jobs')")
    page.fill("#key", VIEWER_KEY)
    page.click("#key-form button")
    page.wait_for_function("document.querySelector('#jobs').textContent.includes('No jobs yet.')")
    assert page.locator("#error").is_hidden(), "the old refusal is gone"
    context.close()


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


def test_the_address_names_the_job_or_sweep_on_screen_and_a_reload_opens_it_again(page, viewer_url: str) -> None:
    result = open_example(page, "izhikevich_tonic_bursting")
    job_id = page.evaluate("window.spikeserveViewer.job")
    assert page.evaluate("location.hash") == f"#/jobs/{job_id}" and result["job_id"] == job_id
    page.reload()
    page.wait_for_function(f"window.spikeserveViewer.job === '{job_id}' && window.spikeserveViewer.result !== null")
    assert page.locator("#result-panel").is_visible() and "2,000 steps" in page.text_content("#summary")
    set_request(page, json.dumps(SWEEP))
    page.click("#submit")
    page.wait_for_function("window.spikeserveSweep.status?.status === 'succeeded'", timeout=60_000)
    sweep_id = page.evaluate("window.spikeserveSweep.id")
    assert page.evaluate("location.hash") == f"#/sweeps/{sweep_id}"
    for address in (f"#/sweeps/{sweep_id}", f"#sweep={sweep_id}"):  # the first form of the address still opens
        fresh = page.context.new_page()
        fresh.goto(f"{viewer_url}/{address}")
        fresh.wait_for_selector("[data-plot=heatmap][data-cells='6']")
        fresh.close()


def test_a_first_visit_starts_from_a_request_that_runs(page) -> None:
    assert json.loads(request_text(page)) == json.loads((EXAMPLES / "seed.json").read_text())
    assert page.input_value("#examples") == "seed"


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
