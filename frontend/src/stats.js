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

// times (in steps of dtMs) and senders in time order, as the result lists spikes; neurons: the
// layer's size. Columns are typed arrays indexed by neuron, NaN where a value does not exist.
export function spikeStatistics(times, senders, neurons, durationMs, dtMs) {
  const count = new Int32Array(neurons);
  const length = Math.min(times.length, senders.length);
  for (let i = 0; i < length; i++) count[senders[i]] += 1;
  const starts = new Int32Array(neurons + 1);
  for (let n = 0; n < neurons; n++) starts[n + 1] = starts[n] + count[n];
  const byNeuron = new Float64Array(length); // each neuron's spike times, in time order
  const filled = starts.slice(0, neurons);
  for (let i = 0; i < length; i++) byNeuron[filled[senders[i]]++] = times[i] * dtMs;
  const intervals = new Float64Array(Math.max(0, length - neurons));
  let written = 0;
  const rate = new Float64Array(neurons);
  const meanIsi = new Float64Array(neurons).fill(NaN);
  const cv = new Float64Array(neurons).fill(NaN);
  const seconds = durationMs / 1000;
  let cvSum = 0;
  let withCv = 0;
  for (let n = 0; n < neurons; n++) {
    let sum = 0;
    let squares = 0;
    const k = count[n] - 1; // intervals of neuron n
    for (let j = starts[n] + 1; j < starts[n + 1]; j++) {
      const isi = byNeuron[j] - byNeuron[j - 1];
      intervals[written++] = isi;
      sum += isi;
      squares += isi * isi;
    }
    rate[n] = seconds > 0 ? count[n] / seconds : 0;
    if (k >= 1) meanIsi[n] = sum / k;
    if (k >= 2 && meanIsi[n] > 0) {
      cv[n] = Math.sqrt(Math.max(0, squares / k - meanIsi[n] * meanIsi[n])) / meanIsi[n];
      cvSum += cv[n];
      withCv++;
    }
  }
  const neuron = Int32Array.from({ length: neurons }, (_, n) => n);
  return { columns: { neuron, count, rate, meanIsi, cv }, intervals: intervals.subarray(0, written), meanCv: withCv ? cvSum / withCv : null, withCv };
}

export function statisticsCsv(columns) {
  const keys = STAT_COLUMNS.map((c) => c.key);
  const lines = [keys.join(",")];
  for (let n = 0; n < columns.neuron.length; n++) lines.push(keys.map((key) => (Number.isNaN(columns[key][n]) ? "" : String(columns[key][n]))).join(","));
  return lines.join("\r\n") + "\r\n";
}
