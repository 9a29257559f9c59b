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

// --- populations --------------------------------------------------------------------------------

// Measures of one population (rows start..start+neurons-1 of a view whose spikes are in time
// order): its mean rate; the mean of its neurons' CVs of ISI (cv: per-row, NaN where undefined);
// the Fano factor, each neuron's spike-count variance over mean in consecutive windows of
// windowSteps steps (whole windows only; population variance), averaged over the neurons that
// spiked in them; and Golomb's synchrony chi, the square root of the variance over time of the
// population's mean count per bin of binSteps, over the mean of its neurons' count variances.
// One pass over the spikes: per neuron, the window (and bin) it last counted in and its count there.
export function populationMeasures({ times, senders, length, start, neurons, steps, dtMs, binSteps, windowSteps, cv }) {
  const windows = Math.floor(steps / windowSteps);
  const bins = Math.floor(steps / binSteps);
  const perNeuron = () => ({ at: new Int32Array(neurons).fill(-1), count: new Float64Array(neurons), sum: new Float64Array(neurons), squares: new Float64Array(neurons) });
  const inWindows = perNeuron();
  const inBins = perNeuron();
  const population = new Float64Array(Math.max(bins, 1));
  const add = (counter, n, slot) => {
    if (counter.at[n] !== slot) {
      counter.squares[n] += counter.count[n] * counter.count[n];
      counter.at[n] = slot;
      counter.count[n] = 0;
    }
    counter.count[n] += 1;
    counter.sum[n] += 1;
  };
  let spikes = 0;
  for (let i = 0; i < length; i++) {
    const n = senders[i] - start;
    if (n < 0 || n >= neurons) continue;
    spikes += 1;
    const w = Math.floor(times[i] / windowSteps);
    if (w < windows) add(inWindows, n, w);
    const b = Math.floor(times[i] / binSteps);
    if (b < bins) {
      add(inBins, n, b);
      population[b] += 1;
    }
  }
  const variance = (counter, n, slots) => {
    const squares = counter.squares[n] + counter.count[n] * counter.count[n];
    const mean = counter.sum[n] / slots;
    return { mean, variance: squares / slots - mean * mean };
  };
  let fanoSum = 0;
  let withFano = 0;
  let single = 0;
  for (let n = 0; n < neurons && windows >= 2; n++) {
    const { mean, variance: v } = variance(inWindows, n, windows);
    if (mean > 0) {
      fanoSum += v / mean;
      withFano += 1;
    }
  }
  for (let n = 0; n < neurons && bins >= 2; n++) single += variance(inBins, n, bins).variance;
  let popMean = 0;
  for (let b = 0; b < bins; b++) popMean += population[b] / neurons;
  popMean /= Math.max(bins, 1);
  let popVariance = 0;
  for (let b = 0; b < bins; b++) popVariance += (population[b] / neurons - popMean) ** 2;
  popVariance /= Math.max(bins, 1);
  let cvSum = 0;
  let withCv = 0;
  for (let n = 0; n < neurons; n++) {
    if (!Number.isNaN(cv[start + n])) {
      cvSum += cv[start + n];
      withCv += 1;
    }
  }
  const seconds = (steps * dtMs) / 1000;
  return {
    neurons,
    spikes,
    rate: seconds > 0 && neurons > 0 ? spikes / (neurons * seconds) : 0,
    cv: withCv ? cvSum / withCv : null,
    withCv,
    fano: withFano ? fanoSum / withFano : null,
    withFano,
    chi: bins >= 2 && single > 0 ? Math.sqrt(popVariance / (single / neurons)) : null,
  };
}

// --- oscillations -------------------------------------------------------------------------------

// The one-sided power spectral density (Hz² per Hz of a rate in Hz) of ``values`` sampled every
// binS seconds, their mean removed and zeros padded to the next power of two: 2 binS |X_k|² / B
// at k / (M binS) Hz for k = 1 .. M/2, X the DFT of the padded signal (numpy.fft.rfft with n=M).
export function powerSpectrum(values, binS) {
  const count = values.length;
  let size = 1;
  while (size < count) size *= 2;
  const re = new Float64Array(size);
  const im = new Float64Array(size);
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(count, 1);
  for (let t = 0; t < count; t++) re[t] = values[t] - mean;
  fft(re, im);
  const half = size / 2;
  const frequencies = new Float64Array(half);
  const power = new Float64Array(half);
  for (let k = 1; k <= half; k++) {
    frequencies[k - 1] = k / (size * binS);
    power[k - 1] = (2 * binS * (re[k] * re[k] + im[k] * im[k])) / count;
  }
  return { frequencies, power };
}

// In-place radix-2 decimation-in-time FFT of (re, im), whose length is a power of two.
export function fft(re, im) {
  const size = re.length;
  for (let i = 1, j = 0; i < size; i++) {
    let bit = size >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let width = 2; width <= size; width *= 2) {
    const angle = (-2 * Math.PI) / width;
    for (let from = 0; from < size; from += width) {
      for (let k = 0; k < width / 2; k++) {
        const wr = Math.cos(angle * k);
        const wi = Math.sin(angle * k);
        const a = from + k;
        const b = a + width / 2;
        const xr = re[b] * wr - im[b] * wi;
        const xi = re[b] * wi + im[b] * wr;
        re[b] = re[a] - xr;
        im[b] = im[a] - xi;
        re[a] += xr;
        im[a] += xi;
      }
    }
  }
}

// The autocorrelation of ``values`` (mean removed) at lags 0 .. maxLag, r(0) = 1:
// sum_t y_t y_(t+k) / sum_t y_t², the sums over the pairs inside the signal.
export function autocorrelation(values, maxLag) {
  const count = values.length;
  const mean = values.reduce((a, b) => a + b, 0) / Math.max(count, 1);
  const y = Float64Array.from(values, (v) => v - mean);
  let zero = 0;
  for (const v of y) zero += v * v;
  const lags = Math.min(maxLag, count - 1);
  const r = new Float64Array(Math.max(lags + 1, 0));
  for (let k = 0; k <= lags; k++) {
    let sum = 0;
    for (let t = 0; t + k < count; t++) sum += y[t] * y[t + k];
    r[k] = zero > 0 ? sum / zero : 0;
  }
  return r;
}
