/* The floor for Brunel's network (examples/brunel.json): the same events as spikeserve's run, in
 * the plainest loop that this machine runs fastest, to say how far the engine is from what the
 * hardware allows (issue 31). Nothing here is shared with the engine; benchmarks/floor.py builds
 * and runs it.
 *
 * The model is the engine's: 0.8 N excitatory and 0.2 N inhibitory box LIF neurons with delta
 * synapses (v += a (v_leak - v) + input, a = dt / tau_m; threshold 20, reset 10, held for 20
 * steps after a spike, input lost meanwhile); fixed in-degree 800 E and 200 I sources per neuron
 * (no multapses), weights 0.1 and -0.5, one delay of 15 steps; each neuron's external drive a
 * binomial count of 800 sources at 25 Hz per step (weight 0.1); v0 uniform in [0, 20).
 *
 * What makes it a floor rather than an engine: the drive's counts come from a per-thread
 * xoshiro128+, a 16-bit uniform each (two a draw), through a table of 65,536 Poisson counts of
 * mean 2 (the binomial's 1.995: within 0.25 %; counts rarer than 1 in 65,536 never occur), connectivity
 * is built once in the layout the loop wants (rows by source, split by the threads' target
 * ranges), and the threads meet twice per delay window instead of every step: a window's 15
 * steps of neuron updates first (each thread its own neurons), then the window's spikes delivered
 * (each thread into its own targets), which the delay allows since nothing delivered in a window
 * is read before the next one. No recording beyond spike counts, no checks.
 *
 * Usage: floor_brunel N STEPS THREADS SEED   (prints: seconds of the loop, E and I spikes)
 */
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DELAY 15
#define SLOTS (2 * DELAY)
#define MAX_THREADS 64
#define TABLE 65536 /* a 16-bit uniform's count */

typedef struct {
    uint32_t s[4];
} rng_t;

static inline uint32_t rotl(uint32_t x, int k) { return (x << k) | (x >> (32 - k)); }

static inline uint32_t next(rng_t *r) { /* xoshiro128+ */
    const uint32_t result = r->s[0] + r->s[3], t = r->s[1] << 9;
    r->s[2] ^= r->s[0];
    r->s[3] ^= r->s[1];
    r->s[1] ^= r->s[2];
    r->s[0] ^= r->s[3];
    r->s[2] ^= t;
    r->s[3] = rotl(r->s[3], 11);
    return result;
}

static rng_t seeded(uint64_t seed) {
    rng_t r;
    for (int k = 0; k < 4; k++) { /* splitmix64 */
        seed += 0x9E3779B97F4A7C15ull;
        uint64_t z = seed;
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        r.s[k] = (uint32_t)(z ^ (z >> 31));
    }
    return r;
}

int main(int argc, char **argv) {
    if (argc != 5) {
        fprintf(stderr, "usage: %s N STEPS THREADS SEED\n", argv[0]);
        return 2;
    }
    const int64_t n = atoll(argv[1]), steps = atoll(argv[2]);
    const int threads = atoi(argv[3]);
    const uint64_t seed = strtoull(argv[4], NULL, 10);
    if (n < 1000 || n > (1 << 24) || steps < 1 || threads < 1 || threads > MAX_THREADS) {
        fprintf(stderr, "N in [1000, 2^24], STEPS >= 1, THREADS in [1, %d]\n", MAX_THREADS);
        return 2;
    }
    const int64_t n_e = n * 4 / 5, k_e = 800, k_i = 200;
    const float a = 0.0001f * 50.0f, v_th = 20.0f, v_reset = 10.0f, rho_reset = 20.0f, w_e = 0.1f, w_i = -0.5f;

    /* connectivity: each target draws its sources (no repeats), then rows by source, each row's
     * targets ascending and split where the threads' ranges begin */
    int64_t *degree = calloc((size_t)n + 1, sizeof(int64_t));
    int32_t *pre = malloc(sizeof(int32_t) * (size_t)(n * (k_e + k_i)));
    uint8_t *taken = calloc((size_t)n, 1);
    rng_t r = seeded(seed);
    for (int64_t j = 0; j < n; j++) {
        int32_t *mine = pre + j * (k_e + k_i);
        for (int64_t k = 0; k < k_e + k_i; k++) {
            const int64_t lo = k < k_e ? 0 : n_e, span = k < k_e ? n_e : n - n_e;
            int32_t i;
            do i = (int32_t)(lo + (int64_t)(((uint64_t)next(&r) * (uint64_t)span) >> 32));
            while (taken[i]);
            taken[i] = 1;
            mine[k] = i;
            degree[i + 1]++;
        }
        for (int64_t k = 0; k < k_e + k_i; k++) taken[mine[k]] = 0;
    }
    for (int64_t i = 0; i < n; i++) degree[i + 1] += degree[i];
    int32_t *post = malloc(sizeof(int32_t) * (size_t)degree[n]);
    int64_t *fill = malloc(sizeof(int64_t) * (size_t)n);
    memcpy(fill, degree, sizeof(int64_t) * (size_t)n);
    for (int64_t j = 0; j < n; j++) /* targets ascending within each row */
        for (int64_t k = 0; k < k_e + k_i; k++) post[fill[pre[j * (k_e + k_i) + k]]++] = (int32_t)j;
    const int64_t width = (n + threads - 1) / threads;
    int64_t *split = malloc(sizeof(int64_t) * (size_t)(n * (threads + 1)));
    for (int64_t i = 0; i < n; i++) {
        int64_t s = degree[i];
        for (int th = 0; th <= threads; th++) {
            const int64_t bound = th * width < n ? th * width : n;
            while (s < degree[i + 1] && post[s] < bound) s++;
            split[i * (threads + 1) + th] = th == threads ? degree[i + 1] : s;
        }
    }

    /* the Poisson table: the count of each 16-bit uniform u, the c with cdf(c - 1) <= u / 2^16 < cdf(c) */
    const double mean = 800 * 25.0 * 0.0001;
    uint8_t *poisson = malloc(TABLE);
    double p = exp(-mean), cdf = p;
    int c = 0;
    for (int u = 0; u < TABLE; u++) {
        while ((u + 0.5) / TABLE >= cdf && c < 255) {
            p *= mean / ++c;
            cdf += p;
        }
        poisson[u] = (uint8_t)c;
    }
    float *v = malloc(sizeof(float) * (size_t)n), *rho = calloc((size_t)n, sizeof(float));
    float *ring = calloc((size_t)(SLOTS * n), sizeof(float));
    for (int64_t i = 0; i < n; i++) v[i] = v_th * (float)((next(&r) >> 8) * (1.0 / 16777216.0));
    int32_t *fired = malloc(sizeof(int32_t) * (size_t)(n * DELAY)); /* a window's spikes, by thread range */
    int64_t counts[DELAY][MAX_THREADS];
    int64_t spikes_e = 0, spikes_i = 0;

    const double started = omp_get_wtime();
#pragma omp parallel num_threads(threads) reduction(+ : spikes_e, spikes_i)
    {
        const int me = omp_get_thread_num();
        const int64_t lo = me * width < n ? me * width : n, hi = lo + width < n ? lo + width : n;
        rng_t mine = seeded(seed * 7919 + (uint64_t)me + 1);
        for (int64_t t0 = 0; t0 < steps; t0 += DELAY) {
            const int64_t window = steps - t0 < DELAY ? steps - t0 : DELAY;
            for (int64_t s = 0; s < window; s++) {
                float *in = ring + ((t0 + s) % SLOTS) * n;
                int32_t *out = fired + s * n + lo;
                int64_t count = 0;
                uint32_t bits = 0;
                for (int64_t i = lo; i < hi; i++) {
                    if (!((i - lo) & 1)) bits = next(&mine);
                    const float x = in[i] + w_e * (float)poisson[bits & 0xFFFF];
                    bits >>= 16;
                    in[i] = 0.0f;
                    const float vd = v[i] + a * (0.0f - v[i]) + x;
                    const int held = rho[i] > 0.0f, fire = !held && vd > v_th;
                    v[i] = held ? v[i] : (fire ? v_reset : vd);
                    rho[i] = fire ? rho_reset : (held ? rho[i] - 1.0f : 0.0f);
                    if (fire) out[count++] = (int32_t)i;
                }
                counts[s][me] = count;
            }
#pragma omp barrier
            for (int64_t s = 0; s < window; s++) {
                float *slot = ring + ((t0 + s + DELAY) % SLOTS) * n;
                for (int th = 0; th < threads; th++) {
                    const int64_t from = th * width;
                    for (int64_t f = 0; f < counts[s][th]; f++) {
                        const int64_t i = fired[s * n + from + f];
                        const float w = i < n_e ? w_e : w_i;
                        const int64_t *row = split + i * (threads + 1);
                        for (int64_t k = row[me]; k < row[me + 1]; k++) slot[post[k]] += w;
                        if (me == 0) {
                            if (i < n_e) spikes_e++;
                            else spikes_i++;
                        }
                    }
                }
            }
#pragma omp barrier
        }
    }
    const double seconds = omp_get_wtime() - started;
    printf("%.4f %lld %lld\n", seconds, (long long)spikes_e, (long long)spikes_i);
    return 0;
}
