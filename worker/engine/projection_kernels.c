/* Sparse projections with delays on the CPU: each spike of a presynaptic neuron adds its
 * synapses' weights into a ring buffer of future inputs, at the slot of the step it arrives.
 *
 * Synapses are stored in compressed rows by presynaptic neuron, each row sorted by target, so a
 * spike reads one contiguous run. Each target sums its contributions in one fixed order (spiking
 * presynaptic neurons in ascending index, then each row's synapses in order), whatever the number
 * of threads: a thread owns a range of targets and finds, in every spiking row, the synapses that
 * fall in its range by binary search. The result depends on the spikes alone.
 */
#include "compressed_rows.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define PARALLEL_WORK (1 << 16)

/* For each step t of ``steps``, batch row b and presynaptic neuron j with spikes[t, b, j] != 0 (a
 * count: j's synapses are added that many times), adds weight[s] (or ``shared_weight`` when weight
 * is NULL) to ring[(step + t + delay[s]) % slots, b, post[s]] (delay ``shared_delay`` when delay is
 * NULL), for s in j's row. ring is (slots, rows, n_post). ``synapses`` (the events' synapse count)
 * sizes the team. Steps are added in order, so a slot that several steps reach (per-synapse
 * delays) sums them in the same order however the steps are grouped into calls. */
void project_spikes(int64_t steps, int64_t rows, int64_t n_pre, int64_t n_post, int64_t slots, int64_t step,
                    const uint8_t *spikes, const int64_t *offsets, const int32_t *post, const float *weight, float shared_weight,
                    const int32_t *delay, int64_t shared_delay, float *ring, int64_t synapses, int threads) {
    const int64_t parts = synapses < PARALLEL_WORK ? 1 : threads;
    const int64_t width = (n_post + parts - 1) / parts;
#pragma omp parallel for collapse(2) schedule(static) num_threads(parts)
    for (int64_t b = 0; b < rows; b++) {
        for (int64_t part = 0; part < parts; part++) {
            const int64_t lo = part * width, hi = lo + width < n_post ? lo + width : n_post;
            if (lo >= hi) continue;
            for (int64_t t = 0; t < steps; t++) {
                const uint8_t *x = spikes + (t * rows + b) * n_pre;
                for (int64_t j = 0; j < n_pre; j++) {
                    if (!x[j]) continue;
                    int64_t start, stop;
                    row_range(post, offsets[j], offsets[j + 1], n_post, lo, hi, &start, &stop);
                    for (uint8_t c = x[j]; c; c--) {
                        if (!delay) {  /* one slot for the whole row: the common case, kept tight */
                            float *slot = ring + (((step + t + shared_delay) % slots) * rows + b) * n_post;
                            if (weight)
                                for (int64_t s = start; s < stop; s++) slot[post[s]] += weight[s];
                            else
                                for (int64_t s = start; s < stop; s++) slot[post[s]] += shared_weight;
                            continue;
                        }
                        for (int64_t s = start; s < stop; s++) {
                            float *slot = ring + (((step + t + delay[s]) % slots) * rows + b) * n_post;
                            slot[post[s]] += weight ? weight[s] : shared_weight;
                        }
                    }
                }
            }
        }
    }
}

/* --- drawing connectivity -------------------------------------------------------------------- */
/* A fixed-degree rule draws, for each of ``rows`` neurons, ``k`` partners among ``choices``. The
 * draws are counter-based (Philox4x32-10 keyed by the seed, counter (block, row, stream, 1)), so a
 * row's partners depend on the seed, the edge's stream and the row alone: any thread count, any
 * machine. Without multapses Floyd's algorithm picks k distinct partners in k draws (a bitmap per
 * thread marks those taken); the bounded integers are Lemire's multiply-shift with rejection, so
 * every partner is equally likely. */

static inline void philox_round(uint32_t c[4], uint32_t k0, uint32_t k1) {
    const uint64_t p0 = (uint64_t)0xD2511F53u * c[0], p1 = (uint64_t)0xCD9E8D57u * c[2];
    const uint32_t next[4] = {(uint32_t)(p1 >> 32) ^ c[1] ^ k0, (uint32_t)p1, (uint32_t)(p0 >> 32) ^ c[3] ^ k1,
                              (uint32_t)p0};
    memcpy(c, next, sizeof(next));
}

typedef struct {
    uint32_t key0, key1, row, stream, block, used, words[4];
} draws_t;

static inline uint32_t next_word(draws_t *d) {
    if (d->used == 4) {
        uint32_t c[4] = {d->block++, d->row, d->stream, 1u};
        uint32_t k0 = d->key0, k1 = d->key1;
        for (int round = 0; round < 10; round++) {
            philox_round(c, k0, k1);
            k0 += 0x9E3779B9u;
            k1 += 0xBB67AE85u;
        }
        memcpy(d->words, c, sizeof(c));
        d->used = 0;
    }
    return d->words[d->used++];
}

/* A uniform integer in [0, range), range >= 1. */
static inline uint32_t bounded(draws_t *d, uint32_t range) {
    uint64_t m = (uint64_t)next_word(d) * range;
    if ((uint32_t)m < range) {
        const uint32_t floor = (uint32_t)(-range) % range;
        while ((uint32_t)m < floor) m = (uint64_t)next_word(d) * range;
    }
    return (uint32_t)(m >> 32);
}

/* out (rows, k): row r's partners in [0, choices); with exclude_own, never r itself (a population
 * onto itself without autapses); with multapses, drawn independently (repeats allowed). */
void draw_partners(int64_t rows, int64_t choices, int64_t k, uint64_t seed, int64_t stream, int exclude_own, int multapses,
                   int32_t *out, int threads) {
#pragma omp parallel num_threads(rows * k < (1 << 16) ? 1 : threads)
    {
        uint8_t *taken = multapses ? NULL : calloc((size_t)choices, 1);
#pragma omp for schedule(static)
        for (int64_t r = 0; r < rows; r++) {
            draws_t d = {(uint32_t)seed, (uint32_t)(seed >> 32), (uint32_t)r, (uint32_t)stream, 0, 4, {0}};
            const int skip = exclude_own && r < choices;
            const int64_t available = choices - skip;
            int32_t *row = out + r * k;
            if (multapses) {
                for (int64_t s = 0; s < k; s++) row[s] = (int32_t)bounded(&d, (uint32_t)available);
            } else {
                int64_t s = 0;
                for (int64_t j = available - k; j < available; j++) {
                    int64_t t = bounded(&d, (uint32_t)(j + 1));
                    if (taken[t]) t = j;
                    taken[t] = 1;
                    row[s++] = (int32_t)t;
                }
                for (s = 0; s < k; s++) taken[row[s]] = 0;
            }
            if (skip)
                for (int64_t s = 0; s < k; s++) row[s] += row[s] >= r;
        }
        free(taken);
    }
}

static int compare_int32(const void *a, const void *b) {
    const int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Compressed rows by source from (pre[s], post[s]) pairs: a stable counting sort by pre, then each
 * row sorted by target when sort_rows (pairs listed by ascending target need none). offsets has
 * n_pre + 1 entries; post_out has ``synapses``. */
void rows_by_source(int64_t n_pre, int64_t synapses, const int32_t *pre, const int32_t *post, int sort_rows, int64_t *offsets,
                    int32_t *post_out) {
    memset(offsets, 0, (size_t)(n_pre + 1) * sizeof(int64_t));
    for (int64_t s = 0; s < synapses; s++) offsets[pre[s] + 1]++;
    for (int64_t j = 0; j < n_pre; j++) offsets[j + 1] += offsets[j];
    int64_t *fill = malloc((size_t)(n_pre > 0 ? n_pre : 1) * sizeof(int64_t));
    memcpy(fill, offsets, (size_t)n_pre * sizeof(int64_t));
    for (int64_t s = 0; s < synapses; s++) post_out[fill[pre[s]]++] = post[s];
    free(fill);
    if (sort_rows)
        for (int64_t j = 0; j < n_pre; j++)
            qsort(post_out + offsets[j], (size_t)(offsets[j + 1] - offsets[j]), sizeof(int32_t), compare_int32);
}
