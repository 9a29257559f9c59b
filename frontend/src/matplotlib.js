// A Python script that draws the result on screen with matplotlib, from the job's NPZ: the
// raster of the layers shown (coloured by layer, bottom to top, as the viewer stacks them) and
// their population rates in the viewer's bin. It writes a PDF by default (vector, for a paper);
// an .svg or .png name writes that instead.

const py = (value) => JSON.stringify(value); // a JSON string or list is a Python literal too

export function matplotlibScript({ jobId, npzName, layers, colors, batch, binMs, caption }) {
  return `"""spikeserve job ${jobId}: its raster and population rates, as the viewer drew them.

Usage: python ${npzName.replace(/\.npz$/, "-figure.py")} [${npzName}] [figure.pdf]
The NPZ is the viewer's "Download NPZ", or: spikeserve result ${jobId} -o ${npzName}
"""

import json
import sys

import matplotlib.pyplot as plt
import numpy as np

LAYERS = ${py(layers)}  # bottom to top
COLORS = ${py(colors)}
BATCH = ${batch}  # the batch entry shown
BIN_MS = ${binMs}  # the population rate's bin
CAPTION = ${py(caption)}

npz = np.load(sys.argv[1] if len(sys.argv) > 1 else ${py(npzName)}, allow_pickle=False)
meta = json.loads(str(npz["meta"]))
dt_ms = meta["dt"] * 1000
duration_ms = meta["steps"] * dt_ms
figure, (raster, rate) = plt.subplots(2, 1, sharex=True, figsize=(8, 6), height_ratios=[3, 1], layout="constrained")
offset = 0
for name, color in zip(LAYERS, COLORS):
    times, senders = npz[f"{name}/times"], npz[f"{name}/senders"]
    if meta["batch"]:  # one batch entry of a batched run
        kept = npz[f"{name}/batch"] == BATCH
        times, senders = times[kept], senders[kept]
    neurons = int(np.prod(meta["layers"][name]["shape"]))
    # a step's spikes at k * dt, as the viewer draws them
    raster.scatter(times * dt_ms, senders + offset, s=2, marker="s", linewidths=0, color=color, label=name)
    edges = np.arange(0, np.ceil(duration_ms / BIN_MS) + 1) * BIN_MS  # bin k holds [k bin, (k + 1) bin)
    counts, _ = np.histogram(times * dt_ms, edges)
    rate.stairs(counts * 1000 / (BIN_MS * neurons), edges, color=color, label=name)
    offset += neurons
raster.set(title="Spike raster", ylabel="neuron", xlim=(0, duration_ms), ylim=(-0.5, offset - 0.5))
rate.set(title=f"Population rate (bin {BIN_MS} ms)", xlabel="time (ms)", ylabel="rate (Hz)")
if len(LAYERS) > 1:
    raster.legend(loc="upper right", markerscale=4)
figure.text(0.01, 0.002, CAPTION, fontsize=7, color="#6b7280")
output = sys.argv[2] if len(sys.argv) > 2 else ${py(npzName.replace(/\.npz$/, "-figure.pdf"))}
figure.savefig(output)
print(f"wrote {output}")
`;
}
