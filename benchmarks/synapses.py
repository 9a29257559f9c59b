"""Where event-driven synapses beat the dense operation: the crossover in input activity.

    python -m benchmarks.synapses [--repeats 5]

For each synaptic layer of the runner (linear, conv2d, avgpool2d), times the event kernel and the
dense operation (one GEMM or convolution over all rows, spikes converted to float32 first, as the
runner does) on the same spikes at a range of activities (the fraction of inputs active per row),
interleaved, medians. The crossover is the highest activity at which the events were still
faster; ``worker.engine.synapses`` uses it to choose per chunk.
"""

import argparse
import statistics
import time
from collections.abc import Callable

import torch
import torch.nn.functional as F

from worker.engine import events

ACTIVITIES = (0.005, 0.01, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5)


def median_ms(run: Callable[[], object], repeats: int) -> float:
    run()
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times) * 1e3


def layers(activity: float) -> dict[str, tuple[Callable[[], object], Callable[[], object]]]:
    generator = torch.Generator().manual_seed(0)
    x_fc = torch.rand((16_000, 1000), generator=generator) < activity  # batch 32 x 500 steps, 1000 inputs
    w_fc = torch.randn((1000, 1000), generator=generator)
    w_fc_t, b_fc = w_fc.t().contiguous(), torch.randn(1000, generator=generator)
    x_conv = torch.rand((2_000, 8, 28, 28), generator=generator) < activity  # 8 channels of 28 x 28, 2,000 rows
    w_conv = torch.randn((16, 8, 3, 3), generator=generator)
    w_conv_t, b_conv = w_conv.permute(1, 2, 3, 0).contiguous(), torch.randn(16, generator=generator)
    return {
        "linear 1000->1000, 16,000 rows": (
            lambda: events.linear_events(x_fc, w_fc_t, b_fc),
            lambda: torch.addmm(b_fc, x_fc.to(torch.float32), w_fc_t),
        ),
        "conv2d 8->16 3x3 on 28x28, 2,000 rows": (
            lambda: events.conv2d_events(x_conv, w_conv_t, b_conv, (1, 1), (1, 1)),
            lambda: F.conv2d(x_conv.to(torch.float32), w_conv, b_conv, 1, 1),
        ),
        "avgpool2d 2x2 on 8x28x28, 2,000 rows": (
            lambda: events.avgpool2d_events(x_conv, (2, 2), (2, 2), (0, 0)),
            lambda: F.avg_pool2d(x_conv.to(torch.float32), 2, 2),
        ),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    rows: dict[str, list[tuple[float, float, float]]] = {}
    for activity in ACTIVITIES:
        for name, (event, dense) in layers(activity).items():
            rows.setdefault(name, []).append((activity, median_ms(event, args.repeats), median_ms(dense, args.repeats)))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads; medians of {args.repeats}\n")
    for name, measured in rows.items():
        print(f"| {name} | events ms | dense ms | dense / events |")
        print("|---|---|---|---|")
        for activity, event_ms, dense_ms in measured:
            print(f"| {activity:g} | {event_ms:.1f} | {dense_ms:.1f} | {dense_ms / event_ms:.2f}x |")
        faster = [activity for activity, event_ms, dense_ms in measured if event_ms < dense_ms]
        print(f"\ncrossover: events faster up to activity {max(faster) if faster else 'none'}\n")


if __name__ == "__main__":
    main()
