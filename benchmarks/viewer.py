"""The viewer's raster at millions of spikes, in headless Chromium against `spikeserve serve`:

    python -m benchmarks.viewer [--rounds 3] [--huge-neurons 10000 --huge-steps 8000]

For each size, a job of LIF neurons driven hard by Poisson input is submitted in the page (as a
user does), and timed to the painted frame (``requestAnimationFrame`` after the worker's draw):
from the result's NPZ bytes arriving in the result worker to the raster's first frame, the
longest main-thread task from then on (PerformanceObserver "longtask": tasks over 50 ms), the time
until every plot is in the page, then a zoom to 5 % of the time and 200 neurons, and the reset to
the whole run. Beside it, what the page paid
before: the same result as JSON, fetched and parsed on the main thread (the old viewer then also
built one path of every spike there).

The large size needs limits above the defaults (10,000,000 spike events per job); the server here
is started with them raised.
"""

import argparse
import json
import pathlib
import statistics
import sys
import tempfile

from tests.frontend.conftest import CHROMIUM, CHROMIUM_ARGS, serving
from tests.frontend.timing import big_raster_request, measure_big_raster

JSON_ON_MAIN_THREAD = """async ([jobId]) => {
  const t0 = performance.now();
  const text = await (await fetch(`/api/v1/jobs/${jobId}/result`)).text();
  const t1 = performance.now();
  const parsed = JSON.parse(text);
  const t2 = performance.now();
  return {fetch_ms: t1 - t0, parse_ms: t2 - t1, mb: text.length / 1e6, spikes: parsed.layers.n.spikes.times.length};
}"""


def run_size(browser, url: str, request: dict, rounds: int) -> list[dict]:
    runs = []
    for _ in range(rounds):
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        page.goto(url)
        page.wait_for_function("document.querySelector('#examples').options.length > 1")
        timings = measure_big_raster(page, request, timeout_ms=900_000)
        job_id = page.evaluate("window.spikeserveViewer.job")
        timings["json"] = page.evaluate(JSON_ON_MAIN_THREAD, [job_id])
        runs.append(timings)
        page.close()
    return runs


def describe(name: str, runs: list[dict]) -> str:
    def median(values: list[float]) -> str:
        return f"{statistics.median(values):.0f}" if len(runs) > 1 else f"{values[0]:.0f}"

    first = runs[0]["first"]
    return (
        f"| {name} | {first['spikes']:,} | {first['bytes'] / 2**20:.1f} MiB |"
        f" {median([r['first']['ms'] for r in runs])} ms | {median([r['first']['all_plots_ms'] for r in runs])} ms |"
        f" {median([r['longest_task_ms'] for r in runs])} ms |"
        f" {median([r['zoom']['ms'] for r in runs])} ms ({runs[0]['zoom']['mode']}) |"
        f" {median([r['reset']['ms'] for r in runs])} ms ({runs[0]['reset']['mode']}) |"
        f" {runs[0]['json']['mb']:.0f} MB: {median([r['json']['fetch_ms'] for r in runs])} ms fetch +"
        f" {median([r['json']['parse_ms'] for r in runs])} ms parse |"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of the 2-million-spike job (medians)")
    parser.add_argument("--huge-neurons", type=int, default=10_000)
    parser.add_argument("--huge-steps", type=int, default=8_000, help="with 10,000 neurons: about 21 million spikes")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    limits = {"SPIKESERVE_MAX_SPIKE_EVENTS": "50000000", "SPIKESERVE_MAX_RESULT_BYTES": str(500 * 2**20),
              "SPIKESERVE_MAX_RECORD_BYTES": str(2 * 2**30)}  # fmt: skip
    sizes = [("2 M", big_raster_request(4_000, 2_000, 400.0), args.rounds)]
    if args.huge_steps:
        sizes.append(("20 M", big_raster_request(args.huge_neurons, args.huge_steps, 400.0), 1))
    with tempfile.TemporaryDirectory() as data, serving(pathlib.Path(data), **limits) as url, sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        print(
            "| job | spikes | NPZ | bytes arrived -> raster painted | -> every plot in | longest main-thread task | zoom | reset"
            " | the same result as JSON on the main thread |"
        )
        print("|---|---|---|---|---|---|---|---|---|")
        for name, request, rounds in sizes:
            runs = run_size(browser, url, request, rounds)
            print(describe(name, runs), flush=True)
            print(json.dumps(runs), file=sys.stderr)
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
