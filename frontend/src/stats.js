// Spike-train statistics of one layer and batch entry: per neuron its spike count, mean rate,
// mean inter-spike interval (ISI) and the ISI's coefficient of variation (CV = std / mean, over
// neurons with at least two intervals), and every interval for the ISI histogram.

export const STAT_COLUMNS = [
  { key: "neuron", label: "neuron" },
  { key: "count", label: "spikes" },
  { key: "rate", label: "rate (Hz)" },
  { key: "meanIsi", label: "mean ISI (ms)" },
  { key: "cv", label: "CV of ISI" },
];

// timesMs and senders in time order (as the result lists spikes); neurons: the layer's size.
export function spikeStatistics(timesMs, senders, neurons, durationMs) {
  const counts = new Int32Array(neurons);
  for (const s of senders) counts[s] += 1;
  const starts = new Int32Array(neurons + 1);
  for (let n = 0; n < neurons; n++) starts[n + 1] = starts[n] + counts[n];
  const byNeuron = new Float64Array(senders.length); // each neuron's spike times, in time order
  const filled = starts.slice(0, neurons);
  for (let i = 0; i < senders.length; i++) byNeuron[filled[senders[i]]++] = timesMs[i];
  const intervals = new Float64Array(Math.max(0, senders.length - neurons));
  let written = 0;
  const rows = [];
  const seconds = durationMs / 1000;
  for (let n = 0; n < neurons; n++) {
    let sum = 0;
    let squares = 0;
    const k = counts[n] - 1; // intervals of neuron n
    for (let j = starts[n] + 1; j < starts[n + 1]; j++) {
      const isi = byNeuron[j] - byNeuron[j - 1];
      intervals[written++] = isi;
      sum += isi;
      squares += isi * isi;
    }
    const meanIsi = k >= 1 ? sum / k : null;
    const variance = k >= 2 ? Math.max(0, squares / k - meanIsi * meanIsi) : null;
    const cv = k >= 2 && meanIsi > 0 ? Math.sqrt(variance) / meanIsi : null;
    rows.push({ neuron: n, count: counts[n], rate: seconds > 0 ? counts[n] / seconds : 0, meanIsi, cv });
  }
  const cvs = rows.map((row) => row.cv).filter((cv) => cv != null);
  const meanCv = cvs.length ? cvs.reduce((a, b) => a + b, 0) / cvs.length : null;
  return { rows, intervals: intervals.subarray(0, written), meanCv, withCv: cvs.length };
}

export function statisticsCsv(rows) {
  const lines = [STAT_COLUMNS.map((c) => c.key).join(",")];
  for (const row of rows) lines.push(STAT_COLUMNS.map((c) => (row[c.key] == null ? "" : String(row[c.key]))).join(","));
  return lines.join("\r\n") + "\r\n";
}
