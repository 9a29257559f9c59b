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

/* first_at_least, searched outward from ``guess`` in growing steps: a row's targets are spread
 * over the population, so the answer lies near its proportional place, a cache line or two away,
 * where a bisection of a long row would start with a cache miss a probe. */
static inline int64_t first_at_least_near(const int32_t *post, int64_t lo, int64_t hi, int64_t target, int64_t guess) {
    guess = guess < lo ? lo : guess > hi ? hi : guess;
    int64_t step = 8;
    if (guess < hi && post[guess] < target) { /* after guess: everything up to ``lo`` is below */
        lo = guess + 1;
        while (lo + step < hi && post[lo + step] < target) {
            lo += step + 1;
            step *= 2;
        }
        return first_at_least(post, lo, lo + step < hi ? lo + step : hi, target);
    }
    hi = guess; /* at or before guess: the answer is at most ``hi`` */
    while (hi - step > lo && post[hi - step - 1] >= target) {
        hi -= step + 1;
        step *= 2;
    }
    return first_at_least(post, hi - step > lo ? hi - step : lo, hi, target);
}

/* [*start, *stop): the synapses of the row [begin, end) whose targets lie in [lo, hi), of n_post. */
static inline void row_range(const int32_t *post, int64_t begin, int64_t end, int64_t n_post, int64_t lo, int64_t hi,
                             int64_t *start, int64_t *stop) {
    const int64_t length = end - begin;
    *start = lo <= 0 ? begin : first_at_least_near(post, begin, end, lo, begin + length * lo / n_post);
    *stop = hi >= n_post ? end : first_at_least_near(post, *start, end, hi, begin + length * hi / n_post);
}
