/* Sparse projections with delays on the CPU: each spike of a presynaptic neuron adds its
 * synapses' weights into a ring buffer of future inputs, at the slot of the step it arrives.
 *
 * Synapses are stored in compressed rows by presynaptic neuron, each row sorted by target, so a
 * spike reads one contiguous run. Each target sums its contributions in one fixed order (spiking
 * presynaptic neurons in ascending index, then each row's synapses in order), whatever the number
 * of threads: a thread owns a range of targets and finds, in every spiking row, the synapses that
 * fall in its range by binary search. The result depends on the spikes alone.
 */
#include <stdint.h>
#include <stdlib.h>

#define PARALLEL_WORK (1 << 16)

/* The first position in post[lo, hi) whose target is at least ``target``. */
static int64_t first_at_least(const int32_t *post, int64_t lo, int64_t hi, int64_t target) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (post[mid] < target) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

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
                    const int64_t start = first_at_least(post, offsets[j], offsets[j + 1], lo);
                    const int64_t stop = first_at_least(post, start, offsets[j + 1], hi);
                    for (uint8_t c = x[j]; c; c--) {
                        for (int64_t s = start; s < stop; s++) {
                            const int64_t d = delay ? delay[s] : shared_delay;
                            float *slot = ring + (((step + t + d) % slots) * rows + b) * n_post;
                            slot[post[s]] += weight ? weight[s] : shared_weight;
                        }
                    }
                }
            }
        }
    }
}
