/* Synapses in compressed rows by source neuron, each row sorted by target (projection_kernels.c,
 * network/network_kernels.c): the part of a row that falls in a range of targets. */
#pragma once
#include <stdint.h>

/* The first position in post[lo, hi) whose target is at least ``target``. */
static inline int64_t first_at_least(const int32_t *post, int64_t lo, int64_t hi, int64_t target) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (post[mid] < target) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}
