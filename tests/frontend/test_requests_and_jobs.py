"""The viewer's request editor, jobs, sweeps, keys and accessibility, driven in headless Chromium
against a real `spikeserve serve`."""

import itertools
import json
import pathlib
import time
from collections.abc import Iterator

import httpx
import pytest

from tests.frontend.conftest import (
    EXAMPLES,
    api_result,
    open_example,
    request_text,
    screenshot,
    serving,
    set_request,
    submit_and_wait,
)
from worker.settings import hash_key
from worker.simulation.nir_export import network_to_nir_bytes
from worker.simulation.plan import parse_request

pytestmark = pytest.mark.slow  # a browser and spikeserve serve


VIEWER_KEY = "ss_viewer_test_key_0123456789"
# the uPlot instance of a result plot, by the name its container carries (data-plot)
LONG = {  # 50,000 silent LIF neurons for 400,000 steps: about 10 s of work, in chunks of 30 ms
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {"type": "constant", "value": 0.1, "shape": [50_000], "steps": 400_000},
}


def line_of(text: str, needle: str) -> int:
    return next(number for number, line in enumerate(text.splitlines(), 1) if needle in line)


def test_a_broken_request_shows_the_field_and_message_on_its_line(page) -> None:
    broken = json.loads((EXAMPLES / "seed.json").read_text())
    broken["network"]["layers"][0]["in_features"] = 6
    text = json.dumps(broken, indent=2)
    set_request(page, text)
    page.wait_for_timeout(600)  # the linter has run on the text: the marks must not wait for another edit
    page.click("#validate")
    item = page.locator("#validation li").first
    item.wait_for()
    line = line_of(text, '"in_features"')
    assert item.text_content() == f"network.layers[0].in_features: is 6, but the input gives shape [5] (line {line})"
    # the editor marks the line too
    page.wait_for_function(
        "([line]) => window.spikeserveViewer.editor.diagnostics()"
        ".some(d => d.line === line && d.message === 'is 6, but the input gives shape [5]')",
        arg=[line],
    )
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


def test_schema_errors_read_as_the_servers_on_the_line_of_their_field(page) -> None:
    request = json.loads((EXAMPLES / "conv_feedforward.json").read_text())
    request["network"]["layers"][1]["type"] = "lfi"
    request["input"]["steps"] = "2000"
    request["stepz"] = 10
    text = json.dumps(request, indent=2)
    set_request(page, text)
    page.wait_for_function("window.spikeserveViewer.editor.diagnostics().length >= 3", timeout=10_000)
    found = {d["line"]: d["message"] for d in page.evaluate("window.spikeserveViewer.editor.diagnostics()")}
    assert found[line_of(text, '"lfi"')].startswith(
        "network.layers[1].type: unknown type 'lfi' (did you mean 'lif'?); the types here are alif, avgpool2d, conv1d,"
    ), found
    assert found[line_of(text, '"steps": "2000"')] == 'input.steps: expected an integer > 0 or null, got the string "2000"'
    assert found[line_of(text, '"stepz"')].startswith("stepz: not a field here (did you mean 'steps'?); the fields here are")
    assert not any("oneOf" in message or "schema of" in message for message in found.values()), "no schema jargon"


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
    # at once, not after the editor's typing pause: a form of the example shown before, left on
    # screen for a moment, would write its fields into this one
    assert page.locator("#form-fields label", has_text="out: v_th").count() == 1
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


def test_a_graph_request_shows_its_populations_and_drives_in_the_form_and_its_synapses_when_valid(page) -> None:
    page.select_option("#examples", "brunel")
    page.click("#quick-form summary")
    page.locator("#form-fields label", has_text="drive_I: rate (Hz)").wait_for()
    labels = page.locator("#form-fields label").all_text_contents()
    assert {"E: v_th", "I: rho_reset", "drive_E: rate (Hz)"} <= set(labels), labels
    assert {"E->I: weight", "E->I: k (degree)", "E->I: delay (steps)", "external E: weight"} <= set(labels), labels
    k = page.locator("#form-fields label", has_text="I->E: k (degree)").get_attribute("for")
    page.fill(f"#{k}", "150")
    page.dispatch_event(f"#{k}", "change")
    edited = json.loads(request_text(page))["network"]["edges"]
    assert next(e for e in edited if (e["from"], e["to"]) == ("I", "E"))["k"] == 150
    rate = page.locator("#form-fields label", has_text="drive_I: rate (Hz)").get_attribute("for")
    page.fill(f"#{rate}", "20")
    page.dispatch_event(f"#{rate}", "change")
    assert json.loads(request_text(page))["network"]["nodes"][3]["rates"] == 20
    page.click("#validate")
    # 50 fewer inhibitory synapses onto each of the 8,000 excitatory neurons: 10,010,000 - 400,000
    page.locator("#validation .ok", has_text="a graph of 2 populations (E, I), 9,610,000 synapses").wait_for()


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


def test_a_running_brunel_network_shows_cancelled_soon_after_the_click(page) -> None:
    """docs/api.md: a running job stops within about half a second (0.2-0.3 s here; the bound
    keeps a margin for a busy machine). A chunk of a graph is checked between its passes, so
    a chunk longer than its estimate no longer delays the cancel (5 s were seen)."""
    page.select_option("#examples", "brunel")
    page.click("#submit")
    page.wait_for_function("/running \\d/.test(document.querySelector('#job-status').textContent)", timeout=60_000)
    clicked = time.monotonic()
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent.includes('cancelled')", timeout=60_000, polling=20)
    assert time.monotonic() - clicked < 3.0


LIVE = {  # 20,000 silent LIF neurons for 100,000 steps (about 2 s alone), the first 20 driven to spike
    "network": {"layers": [{"type": "lif", "name": "n"}]},
    "input": {
        "type": "constant",
        "value": [0.2 + 0.01 * k for k in range(20)] + [0.1] * 19_980,
        "shape": [20_000],
        "steps": 100_000,
    },
}


def test_a_cancelled_live_job_keeps_its_streamed_raster_and_says_there_is_no_result(page) -> None:
    """While the job runs, only the live raster: no layer or batch choice, no downloads (there is
    no result yet). Cancelled, the raster of what streamed stays, said to be all there is."""
    set_request(page, json.dumps({**LIVE, "input": {**LIVE["input"], "steps": 1_000_000}}))
    page.click("#submit")
    page.wait_for_function("document.querySelector('#summary').textContent.startsWith('Live: layer n')", timeout=60_000)
    assert not page.is_visible("#layer") and not page.is_visible("#download-npz")
    page.click("#cancel")
    page.wait_for_function("document.querySelector('#job-status').textContent.includes('cancelled')", timeout=60_000)
    summary = page.locator("#summary")
    summary.filter(has_text="A job that did not succeed keeps no result to download.").wait_for()
    assert summary.text_content().startswith("Cancelled after ")
    assert page.locator("[data-plot=raster] canvas").count() >= 1, "what streamed stays on screen"
    assert not page.is_visible("#download-json") and not page.is_visible("#layer")


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
    assert page.is_visible("#layer") and page.is_visible("#download-npz"), "the result's controls come with it"


def test_durations_read_as_people_write_them(page) -> None:
    """The estimate of what is left, a job's wall time: never "2 min 60 s" (issue: 179.6 s)."""
    cases = [0.0042, 0.9996, 3.14159, 9.96, 59.6, 60, 179.6, 3599.5]
    written = page.evaluate("(cases) => import('./format.js').then((m) => cases.map(m.formatSeconds))", cases)
    assert written == ["4 ms", "1.0 s", "3.1 s", "10 s", "1 min 0 s", "1 min 0 s", "3 min 0 s", "60 min 0 s"]


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
    # the network as the file held it: its input, then each layer into the next
    page.wait_for_selector("#network-panel:not([hidden]) svg")
    nodes = page.evaluate("Array.from(document.querySelectorAll('#network-diagram .node')).map(g => g.dataset.node)")
    layers = ["input", *(layer["name"] for layer in request["network"]["layers"])]
    assert nodes == layers and len(layers) == 9
    ends = "g => [g.dataset.from, g.dataset.to]"
    edges = page.evaluate(f"Array.from(document.querySelectorAll('#network-diagram .edge')).map({ends})")
    assert edges == [[a, b] for a, b in itertools.pairwise(layers)]


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


def focus_path(page, presses: int) -> list[str]:
    """What the Tab key reaches from the top of a freshly loaded page, one press at a time: each
    element's id, or its text, as a focus listener saw it (asking after each press doubled the
    browser round trips)."""
    page.reload()
    page.wait_for_selector("#result-panel:not([hidden]) [data-plot]")
    page.wait_for_function("document.querySelector('#jobs button')")
    page.evaluate(
        "() => { window.focusPath = []; document.addEventListener('focusin', "
        "event => window.focusPath.push(event.target.id || event.target.textContent.trim())); }"
    )
    for _ in range(presses):
        page.keyboard.press("Tab")
    return page.evaluate("window.focusPath")


def test_a_skip_link_leads_to_the_result_and_its_controls_come_before_the_recent_jobs(page) -> None:
    assert page.is_hidden("#skip-to-result"), "no result, no link to it"
    page.select_option("#examples", "izhikevich_tonic_bursting")
    job_id = submit_and_wait(page)
    reached = focus_path(page, 1)
    assert reached == ["skip-to-result"] and page.is_visible("#skip-to-result"), "the first stop, shown when focused"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "result-title"
    assert page.evaluate("location.hash") == f"#/jobs/{job_id}", "the job's address stays"
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.id") == "layer", "the result's first control comes next"
    reached = focus_path(page, 80)
    assert reached.index("layer") < reached.index("refresh-jobs"), "the result's controls before the recent jobs"


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
    page.click("#validate")  # Validate checks a sweep as Submit would (it used to refuse one)
    page.locator("#validation .ok", has_text="Valid sweep: 6 points").wait_for()
    bad = {**SWEEP, "axes": [{"path": "input.rates", "values": [10.0, -1.0]}]}
    set_request(page, json.dumps(bad))
    page.click("#validate")
    page.locator("#validation li", has_text="axes[0].values[1]").wait_for()
    set_request(page, json.dumps(SWEEP))
    page.click("#submit")
    page.wait_for_function("window.spikeserveSweep.status?.status === 'succeeded'", timeout=60_000)
    page.wait_for_selector("[data-plot=heatmap][data-cells='6']")
    assert page.get_attribute("[data-plot=tuning]", "data-points") == "3"
    assert "6 of 6 points ended (6 succeeded" in page.text_content("#sweep-status")
    sweep_id = page.evaluate("window.spikeserveSweep.id")
    table = httpx.get(f"{viewer_url}/api/v1/sweeps/{sweep_id}/summary", timeout=30).json()
    rows = [dict(zip(table["columns"], row, strict=True)) for row in table["rows"]]
    rate = {(r["input.rates"], r["seed"]): r["out.rate_hz"] for r in rows}
    # a tuning curve per seed (the second axis), each the rate per input rate, rising
    curves = page.evaluate("window.spikeserveSweep.plots[0].series.slice(1).map(s => s.label)")
    assert curves == ["seed = 0", "seed = 1"]
    for seed in (0, 1):
        drawn = page.evaluate(f"Array.from(window.spikeserveSweep.plots[0].data[{seed + 1}])")
        want = [rate[(x, seed)] for x in (10.0, 40.0, 80.0)]
        assert drawn == pytest.approx(want) and want[0] < want[2]
    # the heat map writes each cell's value, on a continuous scale: distinct values, distinct colours
    cells = page.evaluate("window.spikeserveSweep.heat.cells")
    xs, seeds = (10.0, 40.0, 80.0), (0, 1)
    for cell in cells:  # three significant digits of the cell's mean rate
        assert float(cell["text"]) == pytest.approx(rate[(xs[cell["column"]], seeds[cell["row"]])], rel=5e-3)
    values = sorted({cell["value"] for cell in cells})
    fills = {cell["value"]: cell["fill"] for cell in cells}
    assert len({fills[v] for v in values}) == len(values) > 4
    screenshot(page, "sweep")
    # the heat map's cell for rate 40 (second column) and seed 1 (second row) opens that point
    page.wait_for_function("window.spikeserveSweep.timer === null")  # no redraw on its way
    canvas = page.locator("[data-plot=heatmap] canvas")
    size = canvas.bounding_box()
    assert size is not None
    left, top, right, bottom = 110, 26, size["width"] - 70, size["height"] - 34  # the map's box in plots.js
    canvas.click(position={"x": left + 1.5 * (right - left) / 3, "y": top + 1.5 * (bottom - top) / 2})
    point = next(r for r in rows if r["input.rates"] == 40.0 and r["seed"] == 1)
    page.wait_for_function(f"window.spikeserveViewer.job === '{point['job_id']}' && window.spikeserveViewer.result !== null")
    page.wait_for_function(f"document.querySelector('[data-plot=raster]')?.dataset.points === '{point['out.spikes']}'")
    assert point["out.spikes"] > 0


# --- the bugs of the first viewer, each with the check that failed then -------------------------


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
