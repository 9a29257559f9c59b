/* Event-driven synapses and counter-based Poisson input on the CPU.
 *
 * A synaptic layer whose input is spikes adds up, per row (one step of one batch entry), the
 * weight rows of its active inputs. The weights are stored input-major, so each event reads one
 * contiguous row. Every output sums its contributions in one fixed order (active inputs in
 * ascending index, then the bias), so a row's result depends on that row's spikes alone: not on
 * the chunk it belongs to, the thread that computes it or the rows beside it. Input bytes are
 * spike counts (0/1 for neuron output; a spike list may repeat an event): an input counted k
 * times adds its row k times.
 *
 * Poisson input: Philox4x32-10 (Salmon et al., SC'11) keyed by the job's seed, with the counter
 * (neuron / 4, batch entry, step, 0); word neuron % 4 of the output, compared as an integer with a
 * per-neuron threshold round(p * 2^32), decides the spike. Integer arithmetic throughout, so the
 * Triton kernel draws the same spikes on CUDA.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* Outputs summed per tile, so a row's accumulator stays in L1 while its events are added. */
#define TILE 1024
/* Below this many additions a call runs on one thread: an OpenMP team costs more than it saves. */
#define PARALLEL_WORK (1 << 18)

static int team(int64_t work, int threads) { return work < PARALLEL_WORK ? 1 : threads; }

/* The output position that input position y reaches through kernel offset k (with padding and
 * stride), or -1 when it reaches none. */
static inline int64_t reached(int64_t y, int64_t pad, int64_t k, int64_t stride, int64_t out_size) {
    const int64_t shifted = y + pad - k;
    return shifted < 0 || shifted % stride || shifted / stride >= out_size ? -1 : shifted / stride;
}

/* The active inputs of one row in ascending order; returns how many. */
static int64_t active_inputs(const uint8_t *x, int64_t n, int64_t *active) {
    int64_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, x + i, 8);
        if (!word) continue; /* spikes are sparse: skip eight silent inputs at once */
        for (int64_t k = i; k < i + 8; k++)
            if (x[k]) active[count++] = k;
    }
    for (; i < n; i++)
        if (x[i]) active[count++] = i;
    return count;
}

/* out (rows, n_out) = per row, the sum of wt's rows (wt is (n_in, n_out)) over the row's active
 * inputs of x (rows, n_in), plus bias (n_out, or NULL). ``events`` (the sum of x) sizes the team. */
void linear_events(int64_t rows, int64_t n_in, int64_t n_out, int64_t events, const uint8_t *x, const float *wt, const float *bias,
                   float *out, int threads) {
#pragma omp parallel num_threads(team(events * n_out + rows * n_in, threads))
    {
        int64_t *active = malloc(sizeof(int64_t) * (n_in > 0 ? n_in : 1));
        float acc[TILE];
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            const uint8_t *xr = x + r * n_in;
            const int64_t count = active_inputs(xr, n_in, active);
            float *row = out + r * n_out;
            for (int64_t j0 = 0; j0 < n_out; j0 += TILE) {
                const int64_t width = n_out - j0 < TILE ? n_out - j0 : TILE;
                for (int64_t j = 0; j < width; j++) acc[j] = 0.0f;
                for (int64_t e = 0; e < count; e++) {
                    const float *w = wt + active[e] * n_out + j0;
                    for (uint8_t c = xr[active[e]]; c; c--)
                        for (int64_t j = 0; j < width; j++) acc[j] += w[j];
                }
                if (bias)
                    for (int64_t j = 0; j < width; j++) row[j0 + j] = acc[j] + bias[j0 + j];
                else
                    for (int64_t j = 0; j < width; j++) row[j0 + j] = acc[j];
            }
        }
        free(active);
    }
}

/* A 2-d convolution (groups 1, dilation 1) of spikes x (rows, c_in, h, w), by scattering each
 * event's kernel: wt is (c_in, kh, kw, c_out), out (rows, c_out, ho, wo). Each output starts from
 * its bias (or zero); events are added in ascending (channel, y, x) order, each event's kernel
 * positions in ascending (ky, kx). The sums are formed channels-last in a per-thread scratch row
 * (an event's kernel column is then contiguous) and transposed into place. */
void conv2d_events(int64_t rows, int64_t c_in, int64_t h, int64_t w, int64_t c_out, int64_t kh, int64_t kw, int64_t sh,
                   int64_t sw, int64_t ph, int64_t pw, int64_t ho, int64_t wo, int64_t events, const uint8_t *x,
                   const float *wt, const float *bias, float *out, int threads) {
    const int64_t n_in = c_in * h * w, plane = ho * wo;
#pragma omp parallel num_threads(team(events * kh * kw * c_out + rows * (n_in + plane * c_out), threads))
    {
        float *acc = malloc(sizeof(float) * (plane * c_out > 0 ? plane * c_out : 1));
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            for (int64_t p = 0; p < plane; p++)
                for (int64_t o = 0; o < c_out; o++) acc[p * c_out + o] = bias ? bias[o] : 0.0f;
            const uint8_t *xr = x + r * n_in;
            for (int64_t i = 0; i < n_in; i++) {
                for (uint8_t c = xr[i]; c; c--) {
                    const int64_t ch = i / (h * w), y = (i / w) % h, xx = i % w;
                    for (int64_t ky = 0; ky < kh; ky++) {
                        const int64_t oy = reached(y, ph, ky, sh, ho);
                        if (oy < 0) continue;
                        for (int64_t kx = 0; kx < kw; kx++) {
                            const int64_t ox = reached(xx, pw, kx, sw, wo);
                            if (ox < 0) continue;
                            const float *wk = wt + ((ch * kh + ky) * kw + kx) * c_out;
                            float *a = acc + (oy * wo + ox) * c_out;
                            for (int64_t o = 0; o < c_out; o++) a[o] += wk[o];
                        }
                    }
                }
            }
            float *row = out + r * c_out * plane;
            for (int64_t o = 0; o < c_out; o++)
                for (int64_t p = 0; p < plane; p++) row[o * plane + p] = acc[p * c_out + o];
        }
        free(acc);
    }
}

/* Average pooling of spikes x (rows, c, h, w) into out (rows, c, ho, wo): each event adds one
 * to every window holding it, then each window's count is divided by kh * kw (PyTorch's
 * AvgPool2d with count_include_pad, whose windows never leave the padded input). */
void avgpool2d_events(int64_t rows, int64_t c, int64_t h, int64_t w, int64_t kh, int64_t kw, int64_t sh, int64_t sw,
                      int64_t ph, int64_t pw, int64_t ho, int64_t wo, const uint8_t *x, float *out, int threads) {
    const int64_t n_in = c * h * w, plane = ho * wo;
    const float divisor = (float)(kh * kw);
#pragma omp parallel for schedule(static) num_threads(team(rows * (n_in + c * plane) * 4, threads))
    for (int64_t r = 0; r < rows; r++) {
        const uint8_t *xr = x + r * n_in;
        float *row = out + r * c * plane;
        memset(row, 0, sizeof(float) * c * plane);
        for (int64_t i = 0; i < n_in; i++) {
            if (!xr[i]) continue;
            const float count = (float)xr[i];
            const int64_t ch = i / (h * w), y = (i / w) % h, xx = i % w;
            for (int64_t ky = 0; ky < kh; ky++) {
                const int64_t oy = reached(y, ph, ky, sh, ho);
                if (oy < 0) continue;
                for (int64_t kx = 0; kx < kw; kx++) {
                    const int64_t ox = reached(xx, pw, kx, sw, wo);
                    if (ox >= 0) row[ch * plane + oy * wo + ox] += count;
                }
            }
        }
        for (int64_t p = 0; p < c * plane; p++) row[p] = row[p] / divisor;
    }
}

/* --- Poisson input ---------------------------------------------------------------------------- */

/* The draws of one row (step t, batch entry b) of n features into words[n] (n rounded up to a
 * multiple of 4 in the buffer): word g % 4 of Philox4x32-10(counter (g / 4, b, t, 0)) under the
 * key (key0, key1). LANES counters go through the ten rounds side by side, a loop the compiler
 * turns into vector instructions (measured: about 4x the rate of one counter at a time). */
#define LANES 16
static void row_words(int64_t n, uint32_t b, uint32_t t, uint32_t key0, uint32_t key1, uint32_t *words) {
    for (int64_t first = 0; first < (n + 3) / 4; first += LANES) {
        uint32_t c0[LANES], c1[LANES], c2[LANES], c3[LANES];
        for (int lane = 0; lane < LANES; lane++) {
            c0[lane] = (uint32_t)(first + lane);
            c1[lane] = b;
            c2[lane] = t;
            c3[lane] = 0;
        }
        uint32_t k0 = key0, k1 = key1;
        for (int round = 0; round < 10; round++) {
            for (int lane = 0; lane < LANES; lane++) {
                const uint64_t p0 = (uint64_t)0xD2511F53u * c0[lane], p1 = (uint64_t)0xCD9E8D57u * c2[lane];
                const uint32_t n0 = (uint32_t)(p1 >> 32) ^ c1[lane] ^ k0, n2 = (uint32_t)(p0 >> 32) ^ c3[lane] ^ k1;
                c1[lane] = (uint32_t)p1;
                c3[lane] = (uint32_t)p0;
                c0[lane] = n0;
                c2[lane] = n2;
            }
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        const int64_t lanes = (n + 3) / 4 - first < LANES ? (n + 3) / 4 - first : LANES;
        for (int lane = 0; lane < lanes; lane++) {
            uint32_t *w = words + 4 * (first + lane);
            w[0] = c0[lane];
            w[1] = c1[lane];
            w[2] = c2[lane];
            w[3] = c3[lane];
        }
    }
}

/* out (steps, batch, n) as 0/1 bytes: the spikes of steps t0 .. t0 + steps - 1. A neuron spikes
 * when its draw is below threshold[n] (0 .. 2^32: 2^32 always spikes). */
void poisson_spikes(int64_t steps, int64_t batch, int64_t n, int64_t t0, uint64_t seed, const int64_t *threshold,
                    uint8_t *out, int threads) {
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
#pragma omp parallel num_threads(team(steps * batch * n * 8, threads))
    {
        uint32_t *words = malloc(sizeof(uint32_t) * (size_t)((n + 3) / 4 * 4));
#pragma omp for collapse(2) schedule(static)
        for (int64_t t = 0; t < steps; t++) {
            for (int64_t b = 0; b < batch; b++) {
                uint8_t *row = out + (t * batch + b) * n;
                row_words(n, (uint32_t)b, (uint32_t)(t0 + t), k0, k1, words);
                for (int64_t g = 0; g < n; g++) row[g] = (int64_t)words[g] < threshold[g];
            }
        }
        free(words);
    }
}

/* out (steps, batch, n) spike counts of several Poisson trains per feature: feature k's count is
 * the number of thresholds in its row of ``table`` (row[k] of a (rows, width) table, ascending,
 * padded with 2^32) that its draw reaches; the draw is the one poisson_spikes compares. The
 * thresholds are all compared, without branches: where a count stops is random, and a
 * mispredicted branch costs more than the comparisons after it. */
void poisson_counts(int64_t steps, int64_t batch, int64_t n, int64_t t0, uint64_t seed, const int64_t *table, int64_t rows,
                    int64_t width, const int32_t *row, uint8_t *out, int threads) {
    const uint32_t k0 = (uint32_t)seed, k1 = (uint32_t)(seed >> 32);
    /* With one row for every feature, its thresholds below 2^32 (the only ones a draw can reach)
     * fit 32 bits: ``shared`` of them; else -1. */
    int64_t shared = -1;
    if (rows == 1)
        for (shared = 0; shared < width && table[shared] < ((int64_t)1 << 32);) shared++;
#pragma omp parallel num_threads(team(steps * batch * n * 16, threads))
    {
        uint32_t *words = malloc(sizeof(uint32_t) * (size_t)((n + 3) / 4 * 4));
#pragma omp for collapse(2) schedule(static)
        for (int64_t t = 0; t < steps; t++) {
            for (int64_t b = 0; b < batch; b++) {
                uint8_t *counts = out + (t * batch + b) * n;
                row_words(n, (uint32_t)b, (uint32_t)(t0 + t), k0, k1, words);
                if (shared >= 0) {  /* one rate for all: threshold by threshold over the row, in vector lanes */
                    memset(counts, 0, (size_t)n);
                    for (int64_t k = 0; k < shared; k++) {
                        const uint32_t threshold = (uint32_t)table[k];
                        for (int64_t g = 0; g < n; g++) counts[g] += words[g] >= threshold;
                    }
                    continue;
                }
                for (int64_t g = 0; g < n; g++) {
                    const int64_t *thresholds = table + (int64_t)row[g] * width;
                    const int64_t word = words[g];
                    int64_t count = 0;
                    for (int64_t k = 0; k < width; k++) count += word >= thresholds[k];
                    counts[g] = (uint8_t)count;
                }
            }
        }
        free(words);
    }
}

/* --- recording ------------------------------------------------------------------------------- */

/* The number of events in n counts (bytes). */
int64_t spike_count(const uint8_t *x, int64_t n, int threads) {
    int64_t total = 0;
#pragma omp parallel for reduction(+ : total) schedule(static) num_threads(team(n / 8, threads))
    for (int64_t i = 0; i < n; i++) total += x[i];
    return total;
}

/* Events of z (steps, batch, n) 0/1 bytes in (step, batch, neuron) order: fills times (t0 + step),
 * batch and senders (each holding row_start[steps * batch] entries, where row_start is the
 * exclusive prefix sum of the rows' spike counts that spike_rows computed) and adds each neuron's
 * spikes to counts (batch, n). */
void spike_rows(int64_t rows, int64_t n, const uint8_t *z, int64_t *row_start, int threads) {
#pragma omp parallel for schedule(static) num_threads(team(rows * n / 8, threads))
    for (int64_t r = 0; r < rows; r++) {
        int64_t count = 0;
        const uint8_t *row = z + r * n;
        for (int64_t i = 0; i < n; i++) count += row[i];
        row_start[r + 1] = count;
    }
    row_start[0] = 0;
    for (int64_t r = 0; r < rows; r++) row_start[r + 1] += row_start[r];
}

void spike_events(int64_t steps, int64_t batch, int64_t n, int64_t t0, const uint8_t *z, const int64_t *row_start,
                  int64_t *times, int64_t *batches, int64_t *senders, int64_t *counts, int threads) {
    const int64_t rows = steps * batch;
#pragma omp parallel for schedule(static) num_threads(team(rows * n / 8, threads))
    for (int64_t r = 0; r < rows; r++) {
        if (row_start[r + 1] == row_start[r]) continue;
        const uint8_t *row = z + r * n;
        int64_t k = row_start[r];
        int64_t i = 0;
        for (; i + 8 <= n; i += 8) {
            uint64_t word;
            memcpy(&word, row + i, 8);
            if (!word) continue;
            /* Without branches: every index is written and the spikes advance the count. A branch per
             * neuron mispredicts at the densities spikes have (a 23% dense chunk took 3x as long);
             * the candidates go to a local array, as writing past this row's end would race with
             * the thread that fills the next row. */
            int64_t found[8];
            int c = 0;
            for (int j = 0; j < 8; j++) {
                found[c] = i + j;
                c += row[i + j];
            }
            memcpy(senders + k, found, (size_t)c * sizeof(int64_t));
            k += c;
        }
        for (; i < n; i++)
            if (row[i]) senders[k++] = i;
        for (int64_t e = row_start[r]; e < k; e++) {
            times[e] = t0 + r / batch;
            batches[e] = r % batch;
        }
    }
    /* counts: each thread owns a block of neurons across all steps, so no two threads add to one count */
#pragma omp parallel for collapse(2) schedule(static) num_threads(team(rows * n / 8, threads))
    for (int64_t b = 0; b < batch; b++) {
        for (int64_t j0 = 0; j0 < n; j0 += TILE) {
            const int64_t width = n - j0 < TILE ? n - j0 : TILE;
            int64_t *count = counts + b * n + j0;
            for (int64_t t = 0; t < steps; t++) {
                const uint8_t *row = z + (t * batch + b) * n + j0;
                for (int64_t j = 0; j < width; j++) count[j] += row[j];
            }
        }
    }
}
