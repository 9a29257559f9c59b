"""The ``spikeserve`` command line.

    spikeserve run request.json -o result.npz [--device cpu|cuda] [--chunk N]

Errors in the user's files are one line on stderr and exit code 2.
"""

import argparse
import json
import pathlib
import sys
from collections.abc import Sequence

EXIT_USAGE = 2


def _fail(message: str) -> int:
    print(f"spikeserve: error: {message}", file=sys.stderr)
    return EXIT_USAGE


def _run(args: argparse.Namespace) -> int:
    # Imported here so that `spikeserve --help` and the service commands do not load torch.
    from tqdm import tqdm

    from worker.runner import Cancelled, SimulationError, simulate
    from worker.schema import InvalidRequest, parse_request

    path = pathlib.Path(args.request)
    output = pathlib.Path(args.output) if args.output else None
    if output is not None and output.suffix not in (".npz", ".json"):
        return _fail(f"{output}: the output must end in .npz or .json")
    try:
        raw = path.read_bytes()
    except OSError as error:
        return _fail(f"{path}: {error.strerror or error}")
    try:
        json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        return _fail(f"{path}: not valid JSON ({error})")
    try:
        request, plan = parse_request(raw)
    except InvalidRequest as error:
        first = error.errors[0]
        more = f" (and {len(error.errors) - 1} more)" if len(error.errors) > 1 else ""
        return _fail(f"{path}: {first.path}: {first.msg}{more}")

    bar = tqdm(total=plan.steps, unit="step", disable=not sys.stderr.isatty() or args.quiet, leave=False)

    def progress(done: int, total: int) -> None:
        bar.update(done - bar.n)

    try:
        result = simulate(request, plan, device=args.device, chunk_steps=args.chunk, progress=progress, job_id=path.stem)
    except SimulationError as error:
        return _fail(str(error))
    except (Cancelled, KeyboardInterrupt):
        return _fail("interrupted")
    finally:
        bar.close()
    if output is not None:
        output.write_bytes(result.to_npz() if output.suffix == ".npz" else result.to_json())
    spikes = ", ".join(f"{name}={layer.spike_count}" for name, layer in result.layers.items() if layer.times is not None)
    print(
        f"{result.steps} steps on {result.device} in {result.stats['wall_s']:.3f} s, "
        f"{result.stats['neuron_steps_per_s']:.3g} neuron-steps/s; spikes: {spikes or 'none recorded'}"
        + (f"; wrote {output}" if output else "")
    )
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spikeserve", description="Spiking-network simulation, locally or as a service.")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="simulate a request file locally, with no server")
    run.add_argument("request", help="job request JSON (see DESIGN.md section 3)")
    run.add_argument("-o", "--output", help="write the result here: .npz or .json")
    run.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N (default cpu)")
    run.add_argument("--chunk", type=int, default=None, help="steps per chunk (default: sized to memory)")
    run.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    run.set_defaults(handler=_run)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if getattr(args, "chunk", None) is not None and args.chunk < 1:
        return _fail("--chunk must be at least 1")
    return args.handler(args)


if __name__ == "__main__":
    sys.exit(main())
