/* A whole graph of LIF populations with synaptic channels (or Brunel's box neurons, the same
 * update without channels), their sparse (and plastic) projections and their spike inputs, stepped
 * in one call per chunk: the per-pass work of the Python graph runner done here.
 *
 * Each pass does what worker.simulation.graph_runner does with its passes, in its order and with
 * its float32 operations (see worker/engine/lif_channels.py and plasticity.py). A step at a time
 * (``step``; a cycle of a one-step delay, or a plastic edge): the nodes in the graph's order, each
 * population's update from its input rings, then each node's non-plastic edges adding its spikes to
 * their targets' rings; then every plastic edge's plasticity phase (decay, presynaptic events with
 * delivery and depression, postsynaptic events with potentiation). In passes of several steps
 * (``passes``): each node in turn runs all the pass's steps, then its edges deliver them, which
 * sums every ring slot's inputs in the runner's order.
 *
 * Threads: a thread owns the same range of every population's neurons in the updates and of its
 * targets in the deliveries and weight changes, so every sum is taken in one order (spiking
 * sources in ascending index, each row's synapses in order) whatever the number of threads, and
 * what a thread adds to a ring is what it alone reads in the next step's update. Each lists the
 * spikes of its own range (two lists a node, by the step's parity, so that a thread a step ahead
 * never writes what another still reads). Where no edge has a delay of zero, a step needs one
 * barrier: after the updates, before the deliveries read everyone's spikes; an edge of delay zero
 * makes every node a barrier before and after its deliveries.
 */
#include "../compressed_rows.h"
#include <omp.h>
#include <stdint.h>
#include <string.h>

typedef struct {
    int64_t n;
    int32_t channels, exact;
    float *v, *rho, *g;                                          /* state: n, n, channels x n */
    const float *v_leak, *v_th, *v_reset, *rho_reset, *membrane; /* per neuron */
    const float *gain;                                           /* channels x n (exact) */
    const float *decay, *e_rev;                                  /* per channel */
    const uint8_t *conductance;                                  /* per channel */
    float **rings;                                               /* 1 + channels rings of slots x n */
    int64_t slots;
    uint8_t *spikes;  /* steps x n: this chunk's spikes */
    float *v_trace;   /* steps x n: the voltage after every step, or NULL */
    float *scratch;   /* n: the membrane's new value, built up term by term */
    int32_t uniform;  /* v_leak, v_th, v_reset, rho_reset and membrane are one value for all (read at [0]) */
} population_t;

#define MAX_THREADS 64
#define NO_SPIKE INT32_MIN /* an empty place among a target's recent spikes */
#define RECENT 4           /* a target's latest spikes held beside its list, for the rows to read */

typedef struct {
    int32_t population; /* its index among the populations, or -1: an input */
    int64_t n;
    const uint8_t *input; /* an input's counts, steps x n */
    int32_t *fired;       /* 2 x n: by the step's parity, each thread's spiking neurons at the start of its range */
    int64_t *counts;      /* 2 x MAX_THREADS: how many each thread listed */
    const uint8_t *now[2]; /* by parity: the step's spikes or counts (n) */
} node_t;

typedef struct {
    int32_t source;           /* its node */
    int32_t target, row;      /* its target population, and the row of its input it adds to */
    int64_t n_pre, n_post;
    const int64_t *offsets;   /* rows by source, each sorted by target */
    const int32_t *post;
    float *weight;            /* per synapse, or NULL: shared_weight */
    float shared_weight;
    const int32_t *delay;     /* per synapse, or NULL: shared_delay */
    int32_t shared_delay;
    /* plastic edges (weight per synapse, one delay) */
    int32_t plastic, soft, nearest;
    const int32_t *by_post, *pre_by_post; /* the synapses by target, and their sources in that order */
    const int64_t *by_post_offsets;
    float *x_pre;                /* each presynaptic trace just after its last jump ... */
    int64_t *pre_stamp;          /* ... and the step of that jump */
    const float *table_pre;      /* its factor k steps after the jump, for k below the horizon */
    int64_t horizon_pre;
    float *x_post;               /* the postsynaptic traces, decayed each step */
    float decay_post, a_pre, a_post, w_min, w_max, inv_span;
    uint8_t *history; /* shared_delay rows of n_pre: the source's spikes of the last steps, row = step % delay */
    int32_t *pending;     /* per target, the steps of its spikes not yet applied to all its synapses ... */
    int32_t *pending_len; /* ... how many, at most pending_size ... */
    int32_t *recent;      /* ... and the latest RECENT of them a target, latest first (NO_SPIKE: none) */
    int32_t vector;       /* 1: rows in vector registers (no row repeats a target; see plastic_row_vector) */
    int32_t pending_size;
    int32_t one_to_one; /* 1: synapse i from source i to target i, one delay: deliver_one_to_one */
} edge_t;

static inline void part_of(int64_t n, int64_t threads, int64_t me, int64_t *lo, int64_t *hi) {
    const int64_t width = (n + threads - 1) / threads;
    *lo = me * width < n ? me * width : n;
    *hi = *lo + width < n ? *lo + width : n;
}

/* This thread's range of n (all of it outside a team). */
static inline void part(int64_t n, int64_t *lo, int64_t *hi) {
    part_of(n, omp_get_num_threads(), omp_get_thread_num(), lo, hi);
}

/* Runs the block for every ``i`` in [lo, hi) whose byte of ``bytes`` is not zero, ascending: eight
 * bytes at a time where they are aligned (most spikes and counts are zero). */
#define FOR_EACH_NONZERO(bytes, lo, hi, i, ...)                   \
    do {                                                          \
        const uint8_t *restrict bytes_ = (bytes);                 \
        const int64_t hi_ = (hi);                                 \
        for (int64_t i = (lo); i < hi_; i++) {                    \
            if (!(i & 7) && i + 8 <= hi_) {                       \
                uint64_t word_;                                   \
                memcpy(&word_, bytes_ + i, 8);                    \
                if (!word_) {                                     \
                    i += 7;                                       \
                    continue;                                     \
                }                                                 \
            }                                                     \
            if (!bytes_[i]) continue;                             \
            __VA_ARGS__                                           \
        }                                                         \
    } while (0)

/* Lists the spiking neurons of [lo, hi) in this step's row. */
static void list_range(node_t *node, int parity, int64_t lo, int64_t hi) {
    int32_t *restrict fired = node->fired + parity * node->n + lo;
    int64_t count = 0;
    FOR_EACH_NONZERO(node->now[parity], lo, hi, i, { fired[count++] = (int32_t)i; });
    node->counts[parity * MAX_THREADS + omp_get_thread_num()] = count;
}

/* Runs the block for every spiking neuron ``i`` of the step, ascending: the threads' lists in turn. */
#define FOR_EACH_FIRED(node, parity, i, ...)                                                  \
    do {                                                                                      \
        const int64_t threads_ = omp_get_num_threads();                                       \
        for (int64_t th_ = 0; th_ < threads_; th_++) {                                        \
            int64_t lo_, hi_;                                                                 \
            part_of((node)->n, threads_, th_, &lo_, &hi_);                                    \
            const int32_t *fired_ = (node)->fired + (parity) * (node)->n + lo_;               \
            const int64_t count_ = (node)->counts[(parity) * MAX_THREADS + th_];              \
            for (int64_t f_ = 0; f_ < count_; f_++) {                                         \
                const int64_t i = fired_[f_];                                                 \
                __VA_ARGS__                                                                   \
            }                                                                                 \
        }                                                                                     \
    } while (0)

/* The update of neurons [lo, hi) in passes over arrays, each a loop the compiler vectorises (one
 * loop over neurons with the channels inside ran at half Brian2's speed): the membrane's new value
 * is built up term by term in ``scratch``, a channel at a time (its input taken, its term added, its
 * decay), then the refractory period, threshold and reset, branch-free; each term in the order of
 * lif_channels_step, so every float32 operation is the one PyTorch does. The parameters are read
 * as one value where they are one for the whole population (P(name) below), which spares a stream
 * of memory each. Pointers are restrict locals: the spikes are bytes, which may alias anything. */
#define UPDATE_BODY(P)                                                                                      \
    const int64_t n = p->n, slot = (t % p->slots) * n;                                                     \
    float *restrict v = p->v, *restrict rho = p->rho, *restrict delta = p->rings[0] + slot;                 \
    float *restrict v_new = p->scratch;                                                                     \
    const float *restrict v_leak = p->v_leak, *restrict v_th = p->v_th, *restrict v_reset = p->v_reset;    \
    const float *restrict rho_reset = p->rho_reset, *restrict membrane = p->membrane;                      \
    uint8_t *restrict spikes = p->spikes + s * n;                                                           \
    const int exact = p->exact;                                                                             \
    const float v_leak_one = v_leak[0], v_th_one = v_th[0], v_reset_one = v_reset[0];                       \
    const float rho_reset_one = rho_reset[0], membrane_one = membrane[0];                                   \
    if (exact)                                                                                              \
        for (int64_t i = lo; i < hi; i++) v_new[i] = (v[i] - P(v_leak)) * P(membrane);                      \
    else                                                                                                    \
        for (int64_t i = lo; i < hi; i++) v_new[i] = P(v_leak) - v[i]; /* the drive */                     \
    for (int32_t k = 0; k < p->channels; k++) {                                                             \
        float *restrict g = p->g + k * n, *restrict in = p->rings[1 + k] + slot;                            \
        const float *restrict gain = p->gain + k * n;                                                       \
        const float decay = p->decay[k], e_rev = p->e_rev[k], gain_one = gain[0];                           \
        if (exact)                                                                                          \
            for (int64_t i = lo; i < hi; i++) {                                                             \
                const float g_k = g[i] + in[i];                                                             \
                in[i] = 0.0f;                                                                               \
                v_new[i] = v_new[i] + g_k * P(gain);                                                        \
                g[i] = g_k * decay;                                                                         \
            }                                                                                               \
        else if (p->conductance[k])                                                                         \
            for (int64_t i = lo; i < hi; i++) {                                                             \
                const float g_k = g[i] + in[i];                                                             \
                in[i] = 0.0f;                                                                               \
                v_new[i] = v_new[i] + g_k * (e_rev - v[i]);                                                 \
                g[i] = g_k * decay;                                                                         \
            }                                                                                               \
        else                                                                                                \
            for (int64_t i = lo; i < hi; i++) {                                                             \
                const float g_k = g[i] + in[i];                                                             \
                in[i] = 0.0f;                                                                               \
                v_new[i] = v_new[i] + g_k;                                                                  \
                g[i] = g_k * decay;                                                                         \
            }                                                                                               \
    }                                                                                                       \
    if (exact)                                                                                              \
        for (int64_t i = lo; i < hi; i++) v_new[i] = v_new[i] + P(v_leak);                                  \
    else                                                                                                    \
        for (int64_t i = lo; i < hi; i++) v_new[i] = v[i] + P(membrane) * v_new[i];                         \
    for (int64_t i = lo; i < hi; i++) { /* selects only, so that it vectorises; v_new takes the spikes */   \
        const float candidate = v_new[i] + delta[i];                                                        \
        delta[i] = 0.0f;                                                                                    \
        const float r = rho[i], left = r - 1.0f;                                                            \
        const int fire = (r <= 0.0f) & (candidate > P(v_th));                                               \
        v[i] = r > 0.0f ? v[i] : (fire ? P(v_reset) : candidate);                                           \
        rho[i] = fire ? P(rho_reset) : (left > 0.0f ? left : 0.0f);                                         \
        v_new[i] = fire ? 1.0f : 0.0f;                                                                      \
    }                                                                                                       \
    for (int64_t i = lo; i < hi; i++) spikes[i] = (uint8_t)v_new[i];                                        \
    if (p->v_trace) memcpy(p->v_trace + s * n + lo, v + lo, (size_t)(hi - lo) * sizeof(float));

#define PER_NEURON(name) name[i]
#define ONE_VALUE(name) name##_one

static void update_per_neuron(const population_t *p, int64_t t, int64_t s, int64_t lo, int64_t hi) { UPDATE_BODY(PER_NEURON) }
static void update_uniform(const population_t *p, int64_t t, int64_t s, int64_t lo, int64_t hi) { UPDATE_BODY(ONE_VALUE) }

static void update(const population_t *p, int64_t t, int64_t s, int64_t lo, int64_t hi) {
    if (p->uniform) update_uniform(p, t, s, lo, hi);
    else update_per_neuron(p, t, s, lo, hi);
}

/* The synapses of source i whose targets are in [lo, hi): [*start, *stop). */
static inline void row_part(const edge_t *e, int64_t i, int64_t lo, int64_t hi, int64_t *start, int64_t *stop) {
    row_range(e->post, e->offsets[i], e->offsets[i + 1], e->n_post, lo, hi, start, stop);
}

/* Source i's ``c`` spikes (a count) into the targets in [lo, hi) of edge e, at step t: its row's
 * weights added c times, in row order. */
static inline void deliver_row(const edge_t *e, float *ring, int64_t n, int64_t slots, int64_t i, uint8_t c, int64_t t,
                               int64_t lo, int64_t hi) {
    int64_t start, stop;
    row_part(e, i, lo, hi, &start, &stop);
    for (; c; c--) {
        if (!e->delay) {
            float *slot = ring + ((t + e->shared_delay) % slots) * n;
            if (e->weight)
                for (int64_t s = start; s < stop; s++) slot[e->post[s]] += e->weight[s];
            else
                for (int64_t s = start; s < stop; s++) slot[e->post[s]] += e->shared_weight;
            continue;
        }
        for (int64_t s = start; s < stop; s++)
            ring[((t + e->delay[s]) % slots) * n + e->post[s]] += e->weight ? e->weight[s] : e->shared_weight;
    }
}

/* A one-to-one edge (the graph runner's identity and one-to-one edges: synapse i from source i
 * to target i, one delay) at step t, for the targets in [lo, hi): as the runner adds it, the
 * weight times the count for every neuron, zeros included, in one pass the compiler vectorises. */
static void deliver_one_to_one(const edge_t *e, const uint8_t *restrict now, population_t *to, int64_t t, int64_t lo,
                               int64_t hi) {
    float *restrict slot = to->rings[e->row] + ((t + e->shared_delay) % to->slots) * to->n;
    const float *restrict weight = e->weight;
    if (weight)
        for (int64_t i = lo; i < hi; i++) slot[i] += weight[i] * (float)now[i];
    else
        for (int64_t i = lo; i < hi; i++) slot[i] += e->shared_weight * (float)now[i];
}

static void deliver(const edge_t *e, const node_t *from, int parity, population_t *to, int64_t t, int64_t lo, int64_t hi) {
    float *ring = to->rings[e->row];
    const uint8_t *now = from->now[parity];
    if (e->one_to_one) {
        deliver_one_to_one(e, now, to, t, lo, hi);
        return;
    }
    FOR_EACH_FIRED(from, parity, i, { deliver_row(e, ring, to->n, to->slots, i, now[i], t, lo, hi); });
}

/* deliver, for spikes or counts ``now`` (n_pre bytes) that no list holds: read ascending, by every
 * thread for its own targets. */
static void deliver_scan(const edge_t *e, const uint8_t *restrict now, population_t *to, int64_t t, int64_t lo, int64_t hi) {
    if (e->one_to_one) {
        deliver_one_to_one(e, now, to, t, lo, hi);
        return;
    }
    float *ring = to->rings[e->row];
    FOR_EACH_NONZERO(now, 0, e->n_pre, i, { deliver_row(e, ring, to->n, to->slots, i, now[i], t, lo, hi); });
}

/* The rule's bounds, read once a row (kept in registers: stores to the weights could alias ``e``). */
typedef struct {
    float w_min, w_max, inv_span;
} bounds_t;

#define INLINE static inline __attribute__((always_inline))

/* w after ``change``, within the bounds: hard (``soft`` 0) or soft, as plasticity.py's bounded.
 * ``soft`` is a constant where the hot loops call it, so each gets a version without the test. */
INLINE float bounded_by(const int soft, bounds_t b, float w, float change) {
    if (soft) change = change * ((change > 0.0f ? b.w_max - w : w - b.w_min) * b.inv_span);
    float x = w + change;
    x = x < b.w_min ? b.w_min : x;
    return x > b.w_max ? b.w_max : x;
}

static inline bounds_t bounds_of(const edge_t *e) { return (bounds_t){e->w_min, e->w_max, e->inv_span}; }

static inline float bounded(const edge_t *e, float w, float change) { return bounded_by(e->soft, bounds_of(e), w, change); }

/* A trace that jumped to ``value`` at ``stamp``, at step t (as plasticity.py's trace_at). */
static inline float trace(const float *table, int64_t horizon, float value, int64_t stamp, int64_t t) {
    const int64_t lag = t - stamp;
    return lag < horizon ? value * table[lag] : 0.0f;
}

/* Synapse w from source i into target j, after the potentiations its target's spikes owe it: those
 * since its source's last event (earlier ones were applied at that event), in order, each with the
 * source's trace as it was then (it has not jumped since). Potentiation is applied here, at the
 * source's next event or a flush, and not when the target spikes: so the weights are touched in
 * rows, never scattered (Morrison et al. 2007; NEST's scheme), and each synapse still goes through
 * the same bounded changes in the same order as plasticity.py's eager step. */
static float owed(const edge_t *e, float w, int64_t since, float value, int64_t j) {
    const int32_t *times = e->pending + j * e->pending_size;
    const int32_t len = e->pending_len[j];
    int32_t first = len;
    while (first > 0 && times[first - 1] >= since) first--;
    for (int32_t k = first; k < len; k++) w = bounded(e, w, trace(e->table_pre, e->horizon_pre, value, since, times[k]));
    return w;
}

static inline float caught_up(const edge_t *e, float w, int64_t i, int64_t j) {
    const int64_t since = e->pre_stamp[i];
    return e->recent[RECENT * j] < since ? w : owed(e, w, since, e->x_pre[i], j);
}

/* The first step a row's synapses are owed potentiation from: its source's last event, or (a
 * source that never fired) the earliest step there is, still above NO_SPIKE. */
static inline int32_t owed_from(int64_t since) { return since <= NO_SPIKE ? NO_SPIKE + 1 : (int32_t)since; }

/* w after what one of its target's recent spikes (at ``spike``) owes it: nothing where that spike
 * is older than ``from`` (applied before) or absent, else a change by the source's trace then. */
INLINE float owed_one(const int soft, bounds_t b, const float *restrict table, int64_t horizon, float w, int32_t spike,
                      int32_t from, int64_t since, float value) {
    return spike < from ? w : bounded_by(soft, b, w, trace(table, horizon, value, since, spike));
}

/* A presynaptic event of source i (its trace ``value`` since step ``since``) on its synapses
 * [start, stop): each takes what its target's spikes owe it (the latest from ``recent``, the list
 * when there are more than RECENT), delivers to ``ring``, and is depressed by its target's trace. */
INLINE void plastic_row(const edge_t *restrict e, const int soft, int64_t start, int64_t stop, int64_t since, float value,
                        float *restrict ring) {
    const bounds_t b = bounds_of(e);
    const float *restrict table = e->table_pre, *restrict x_post = e->x_post;
    const int64_t horizon = e->horizon_pre;
    const int32_t *restrict post = e->post, *restrict recent = e->recent;
    float *restrict w = e->weight;
    const int32_t from = owed_from(since);
    for (int64_t s = start; s < stop; s++) {
        const int32_t j = post[s];
        const int32_t *r = recent + RECENT * j;
        float current = w[s];
        if (r[RECENT - 1] >= from) {
            current = owed(e, current, since, value, j);
        } else {
            for (int k = RECENT - 2; k >= 0; k--) current = owed_one(soft, b, table, horizon, current, r[k], from, since, value);
        }
        ring[j] += current;
        w[s] = bounded_by(soft, b, current, x_post[j]);
    }
}

#ifdef __AVX512F__
#include <immintrin.h>
#define VECTOR_LANES 16
_Static_assert(RECENT == 4, "recent_of reads a target's recent spikes as 128 bits");

/* bounded_by on 16 weights: the same operations, so the same bits (max(w_min, x) is
 * "x < w_min ? w_min : x", min(w_max, x) is "x > w_max ? w_max : x", NaN and signed zeros alike). */
INLINE __m512 bounded_v(const int soft, bounds_t b, __m512 w, __m512 change) {
    const __m512 w_min = _mm512_set1_ps(b.w_min), w_max = _mm512_set1_ps(b.w_max);
    if (soft) {
        const __mmask16 rise = _mm512_cmp_ps_mask(change, _mm512_setzero_ps(), _CMP_GT_OQ);
        const __m512 room = _mm512_mask_blend_ps(rise, _mm512_sub_ps(w, w_min), _mm512_sub_ps(w_max, w));
        change = _mm512_mul_ps(change, _mm512_mul_ps(room, _mm512_set1_ps(b.inv_span)));
    }
    return _mm512_min_ps(w_max, _mm512_max_ps(w_min, _mm512_add_ps(w, change)));
}

/* owed_one on 16 synapses: lanes whose spike is owed take the bounded change, the rest keep w. */
INLINE __m512 owed_one_v(const int soft, bounds_t b, const float *restrict table, __m512i horizon, __m512 w, __m512i spike,
                         __m512i from, __m512i since, __m512 value) {
    const __mmask16 owes = _mm512_cmpge_epi32_mask(spike, from);
    const __m512i lag = _mm512_sub_epi32(spike, since);
    const __mmask16 inside = _mm512_mask_cmplt_epu32_mask(owes, lag, horizon);
    const __m512 factor = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), inside, lag, table, 4);
    return _mm512_mask_mov_ps(w, owes, bounded_v(soft, b, w, _mm512_maskz_mul_ps(inside, value, factor)));
}

/* The RECENT spikes of the targets of 16 synapses (``post``, ``n`` of them; the rest read target
 * 0's and are masked later), slot k of every target in spikes[k]: four loads of 128 bits a target
 * and a transpose, cheaper than four gathers. */
INLINE void recent_of(const int32_t *restrict recent, const int32_t *restrict post, int64_t n, __m512i spikes[RECENT]) {
    __m512i quarter[4]; /* four targets' slots each */
    for (int q = 0; q < 4; q++) {
        __m128i part[4];
        for (int m = 0; m < 4; m++) {
            const int64_t k = 4 * q + m;
            part[m] = _mm_loadu_si128((const __m128i *)(recent + RECENT * (k < n ? post[k] : 0)));
        }
        __m512i v = _mm512_castsi128_si512(part[0]);
        v = _mm512_inserti32x4(v, part[1], 1);
        v = _mm512_inserti32x4(v, part[2], 2);
        quarter[q] = _mm512_inserti32x4(v, part[3], 3);
    }
    for (int k = 0; k < RECENT; k++) {
        /* slot k of eight targets: elements 4m + k of the first pair of quarters (and the second) */
        const __m512i pick = _mm512_set_epi32(0, 0, 0, 0, 0, 0, 0, 0, 28 + k, 24 + k, 20 + k, 16 + k, 12 + k, 8 + k, 4 + k, k);
        const __m512i low = _mm512_permutex2var_epi32(quarter[0], pick, quarter[1]);
        const __m512i high = _mm512_permutex2var_epi32(quarter[2], pick, quarter[3]);
        spikes[k] = _mm512_inserti64x4(low, _mm512_castsi512_si256(high), 1);
    }
}

/* plastic_row, 16 synapses at a time with their targets' values gathered: whether a target spiked
 * since a source's last event is a coin's throw, which costs the scalar row a misprediction per
 * synapse; here it is a mask. Every lane does what the scalar row does to its synapse, in the same
 * order and rounding; no row may hold a target twice. The ring takes the 16 sums one by one, in row
 * order: a gather and a scatter of them were slower on an AMD EPYC (Zen 4) VM. */
INLINE void plastic_row_vector(const edge_t *restrict e, const int soft, int64_t start, int64_t stop, int64_t since,
                               float value, float *restrict ring) {
    const bounds_t b = bounds_of(e);
    const int32_t *restrict post = e->post, *restrict recent = e->recent;
    const float *restrict table = e->table_pre, *restrict x_post = e->x_post;
    float *restrict w = e->weight;
    const int never = since <= NO_SPIKE; /* a source that never fired: its trace, 0, is owed as 0 */
    const int32_t from = owed_from(since);
    const __m512i from_v = _mm512_set1_epi32(from), since_v = _mm512_set1_epi32(never ? from : (int32_t)since);
    const __m512i horizon_v = _mm512_set1_epi32(never ? 0 : (int32_t)e->horizon_pre), none = _mm512_set1_epi32(NO_SPIKE);
    const __m512 value_v = _mm512_set1_ps(value);
    for (int64_t s = start; s < stop; s += VECTOR_LANES) {
        const __mmask16 lanes = stop - s >= VECTOR_LANES ? (__mmask16)0xFFFF : (__mmask16)((1u << (stop - s)) - 1);
        const __m512i j = _mm512_maskz_loadu_epi32(lanes, post + s);
        __m512 wv = _mm512_maskz_loadu_ps(lanes, w + s);
        const __m512 x = _mm512_mask_i32gather_ps(_mm512_setzero_ps(), lanes, j, x_post, 4);
        __m512i spikes[RECENT];
        recent_of(recent, post + s, stop - s, spikes);
        const __m512i oldest = spikes[RECENT - 1];
        const __mmask16 listed = _mm512_mask_cmpge_epi32_mask(lanes, oldest, from_v), rest = lanes & ~listed;
        for (unsigned m = listed; m; m &= m - 1) { /* targets that spiked more than RECENT times since: their lists */
            const int k = __builtin_ctz(m);
            const float lane = _mm512_cvtss_f32(_mm512_permutexvar_ps(_mm512_set1_epi32(k), wv));
            wv = _mm512_mask_broadcastss_ps(wv, (__mmask16)(1u << k), _mm_set_ss(owed(e, lane, since, value, post[s + k])));
        }
        for (int k = RECENT - 2; k >= 0; k--) {
            const __m512i spike = _mm512_mask_mov_epi32(none, rest, spikes[k]);
            wv = owed_one_v(soft, b, table, horizon_v, wv, spike, from_v, since_v, value_v);
        }
        float delivered[VECTOR_LANES];
        _mm512_storeu_ps(delivered, wv);
        for (int k = 0; k < VECTOR_LANES && s + k < stop; k++) ring[post[s + k]] += delivered[k];
        _mm512_mask_storeu_ps(w + s, lanes, bounded_v(soft, b, wv, x));
    }
}
#elif defined(__AVX2__)
#include <immintrin.h>
#define VECTOR_LANES 8
_Static_assert(RECENT == 4, "recent_of reads a target's recent spikes as 128 bits");

/* bounded_by on 8 weights, as the AVX-512 version does it on 16: the same operations, so the same
 * bits (max(w_min, x) is "x < w_min ? w_min : x", min(w_max, x) is "x > w_max ? w_max : x"). */
INLINE __m256 bounded_v(const int soft, bounds_t b, __m256 w, __m256 change) {
    const __m256 w_min = _mm256_set1_ps(b.w_min), w_max = _mm256_set1_ps(b.w_max);
    if (soft) {
        const __m256 rise = _mm256_cmp_ps(change, _mm256_setzero_ps(), _CMP_GT_OQ);
        const __m256 room = _mm256_blendv_ps(_mm256_sub_ps(w, w_min), _mm256_sub_ps(w_max, w), rise);
        change = _mm256_mul_ps(change, _mm256_mul_ps(room, _mm256_set1_ps(b.inv_span)));
    }
    return _mm256_min_ps(w_max, _mm256_max_ps(w_min, _mm256_add_ps(w, change)));
}

/* owed_one on 8 synapses: lanes whose spike is owed (spike > from - 1) take the bounded change
 * (0 outside the trace's horizon, as trace gives), the rest keep w. */
INLINE __m256 owed_one_v(const int soft, bounds_t b, const float *restrict table, __m256i horizon, __m256 w, __m256i spike,
                         __m256i before, __m256i since, __m256 value) {
    const __m256i owes = _mm256_cmpgt_epi32(spike, before);
    if (_mm256_testz_si256(owes, owes)) return w; /* the usual case for older slots: no gather */
    const __m256i lag = _mm256_sub_epi32(spike, since); /* >= 0 where owed: spikes are steps >= since */
    const __m256 inside = _mm256_castsi256_ps(_mm256_and_si256(owes, _mm256_cmpgt_epi32(horizon, lag)));
    const __m256 factor = _mm256_mask_i32gather_ps(_mm256_setzero_ps(), table, lag, inside, 4);
    const __m256 change = _mm256_and_ps(_mm256_mul_ps(value, factor), inside);
    return _mm256_blendv_ps(w, bounded_v(soft, b, w, change), _mm256_castsi256_ps(owes));
}

/* The RECENT spikes of the targets of 8 synapses, slot k of every target in spikes[k]: a load of
 * 128 bits a target and two 4 x 4 transposes, cheaper than four gathers. */
INLINE void recent_of(const int32_t *restrict recent, const int32_t *restrict post, __m256i spikes[RECENT]) {
    __m128 r[8];
    for (int m = 0; m < 8; m++) r[m] = _mm_castsi128_ps(_mm_loadu_si128((const __m128i *)(recent + RECENT * post[m])));
    _MM_TRANSPOSE4_PS(r[0], r[1], r[2], r[3]);
    _MM_TRANSPOSE4_PS(r[4], r[5], r[6], r[7]);
    for (int k = 0; k < RECENT; k++) spikes[k] = _mm256_castps_si256(_mm256_set_m128(r[4 + k], r[k]));
}

/* plastic_row, 8 synapses at a time (the AVX-512 version's scheme; see it): AVX2 has no masked
 * scatter, so the ring takes the 8 sums one by one (no row repeats a target, so in any order),
 * and a row's last synapses, fewer than 8, go through the scalar row. */
INLINE void plastic_row_vector(const edge_t *restrict e, const int soft, int64_t start, int64_t stop, int64_t since,
                               float value, float *restrict ring) {
    const bounds_t b = bounds_of(e);
    const int32_t *restrict post = e->post, *restrict recent = e->recent;
    const float *restrict table = e->table_pre, *restrict x_post = e->x_post;
    float *restrict w = e->weight;
    const int never = since <= NO_SPIKE; /* a source that never fired: its trace, 0, is owed as 0 */
    const int32_t from = owed_from(since);
    /* never: lags from step 0, all outside a horizon of 0 (a lag from ``from`` would wrap round) */
    const __m256i before = _mm256_set1_epi32(from - 1), since_v = _mm256_set1_epi32(never ? 0 : (int32_t)since);
    const __m256i horizon_v = _mm256_set1_epi32(never ? 0 : (int32_t)e->horizon_pre), none = _mm256_set1_epi32(NO_SPIKE);
    const __m256 value_v = _mm256_set1_ps(value);
    int64_t s = start;
    for (; s + VECTOR_LANES <= stop; s += VECTOR_LANES) {
        const __m256i j = _mm256_loadu_si256((const __m256i *)(post + s));
        __m256 wv = _mm256_loadu_ps(w + s);
        const __m256 x = _mm256_i32gather_ps(x_post, j, 4);
        __m256i spikes[RECENT];
        recent_of(recent, post + s, spikes);
        const __m256i listed = _mm256_cmpgt_epi32(spikes[RECENT - 1], before);
        const int listed_lanes = _mm256_movemask_ps(_mm256_castsi256_ps(listed));
        if (listed_lanes) { /* targets that spiked more than RECENT times since: their lists */
            float lanes[VECTOR_LANES];
            _mm256_storeu_ps(lanes, wv);
            for (unsigned m = (unsigned)listed_lanes; m; m &= m - 1) {
                const int k = __builtin_ctz(m);
                lanes[k] = owed(e, lanes[k], since, value, post[s + k]);
            }
            wv = _mm256_loadu_ps(lanes);
        }
        for (int k = RECENT - 2; k >= 0; k--) {
            const __m256i spike = _mm256_blendv_epi8(spikes[k], none, listed);
            wv = owed_one_v(soft, b, table, horizon_v, wv, spike, before, since_v, value_v);
        }
        float sums[VECTOR_LANES];
        _mm256_storeu_ps(sums, wv);
        for (int k = 0; k < VECTOR_LANES; k++) ring[post[s + k]] += sums[k];
        _mm256_storeu_ps(w + s, bounded_v(soft, b, wv, x));
    }
    if (s < stop) plastic_row(e, soft, s, stop, since, value, ring);
}
#else
#define VECTOR_LANES 1
#endif

/* How many synapses a plastic row takes at a time here: 16 where the library was built with
 * AVX-512, 8 with AVX2, else 1. */
int32_t network_vector_lanes(void) { return VECTOR_LANES; }

/* Every synapse into target j caught up, and its pending spikes cleared. */
static void flush_target(edge_t *e, int64_t j) {
    if (!e->pending_len[j]) return;
    for (int64_t k = e->by_post_offsets[j]; k < e->by_post_offsets[j + 1]; k++) {
        const int32_t s = e->by_post[k];
        e->weight[s] = caught_up(e, e->weight[s], e->pre_by_post[k], j);
    }
    e->pending_len[j] = 0;
    for (int k = 0; k < RECENT; k++) e->recent[RECENT * j + k] = NO_SPIKE;
}

/* A barrier where a team runs the step (``team``), nothing where one thread does. */
#define SYNC(team)                   \
    do {                             \
        if (team) {                  \
            _Pragma("omp barrier");  \
        }                            \
    } while (0)

/* Source events' row [start, stop) of a plastic edge: in vector registers where it may (``vector``),
 * else one synapse at a time; each with its bounds' kind fixed, so the hot loops hold no test. */
static inline void plastic_row_of(const edge_t *e, int64_t start, int64_t stop, int64_t since, float value, float *ring) {
#if VECTOR_LANES > 1
    if (e->vector) {
        if (e->soft)
            plastic_row_vector(e, 1, start, stop, since, value, ring);
        else
            plastic_row_vector(e, 0, start, stop, since, value, ring);
        return;
    }
#endif
    if (e->soft)
        plastic_row(e, 1, start, stop, since, value, ring);
    else
        plastic_row(e, 0, start, stop, since, value, ring);
}

/* The plasticity phase of step t for one edge, by a thread owning targets [lo, hi) (and sources
 * [src_lo, src_hi) for the presynaptic traces). Barriers separate what other threads read. */
static void plasticity(edge_t *e, const node_t *from, const node_t *post_node, int parity, population_t *to, int64_t t,
                       int team) {
    int64_t lo, hi, src_lo, src_hi;
    part(e->n_post, &lo, &hi);
    part(e->n_pre, &src_lo, &src_hi);
    const int64_t delay = e->shared_delay, n_pre = e->n_pre;
    uint8_t *restrict now = e->history + (t % delay) * n_pre;
    const uint8_t *restrict emitted = from->now[parity];
    float *restrict x_pre = e->x_pre, *restrict x_post = e->x_post;
    int64_t *restrict pre_stamp = e->pre_stamp;
    const int nearest = e->nearest;
    const float decay_post = e->decay_post;
    memcpy(now + src_lo, emitted + src_lo, (size_t)(src_hi - src_lo));
    for (int64_t j = lo; j < hi; j++) x_post[j] *= decay_post;
    SYNC(team);
    const uint8_t *restrict events = e->history + ((t + 1) % delay) * n_pre; /* step t - delay + 1 */
    float *restrict ring = to->rings[e->row] + ((t + 1) % to->slots) * to->n;
    FOR_EACH_NONZERO(events, 0, n_pre, i, {
        int64_t start, stop;
        row_part(e, i, lo, hi, &start, &stop);
        plastic_row_of(e, start, stop, pre_stamp[i], x_pre[i], ring);
    });
    SYNC(team);
    for (int64_t i = src_lo; i < src_hi; i++) {
        if (!events[i]) continue;
        const float before = trace(e->table_pre, e->horizon_pre, x_pre[i], pre_stamp[i], t);
        x_pre[i] = nearest ? e->a_pre : before + e->a_pre;
        pre_stamp[i] = t;
    }
    SYNC(team);
    FOR_EACH_FIRED(post_node, parity, j, {
        if (j >= lo && j < hi) {
            x_post[j] = nearest ? e->a_post : x_post[j] + e->a_post;
            if (e->pending_len[j] == e->pending_size) flush_target(e, j);
            e->pending[j * e->pending_size + e->pending_len[j]++] = (int32_t)t;
            int32_t *r = e->recent + RECENT * j;
            for (int k = RECENT - 1; k > 0; k--) r[k] = r[k - 1];
            r[0] = (int32_t)t;
        }
    });
}

/* Every plastic edge's weights caught up with every spike so far (before they are read). */
void network_flush(edge_t *edges, int32_t n_plastic, const int32_t *plastic) {
    for (int32_t q = 0; q < n_plastic; q++) {
        edge_t *e = edges + plastic[q];
        for (int64_t j = 0; j < e->n_post; j++) flush_target(e, j);
    }
}

/* One step t (the chunk's step s) of every node and edge, by this thread of a team (``team``), or
 * alone. ``undelayed``: some edge has a delay of zero, so each node delivers before the next runs. */
static void step(int64_t t, int64_t s, int32_t n_nodes, node_t *nodes, population_t *populations,
                 const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int32_t n_plastic,
                 const int32_t *plastic, const int32_t *plastic_nodes, int team, int undelayed) {
    const int parity = (int)(t & 1);
    for (int32_t k = 0; k < n_nodes; k++) {
        node_t *node = nodes + k;
        int64_t lo, hi;
        part(node->n, &lo, &hi);
        if (node->population >= 0) {
            population_t *p = populations + node->population;
            update(p, t, s, lo, hi);
            node->now[parity] = p->spikes + s * node->n; /* the same value from every thread */
        } else {
            node->now[parity] = node->input + s * node->n;
        }
        list_range(node, parity, lo, hi);
        if (undelayed) {
            SYNC(team);
            for (int64_t f = feed_offsets[k]; f < feed_offsets[k + 1]; f++) {
                const edge_t *e = edges + feeds[f];
                part(e->n_post, &lo, &hi);
                deliver(e, node, parity, populations + e->target, t, lo, hi);
            }
            SYNC(team);
        }
    }
    if (!undelayed) {
        SYNC(team);
        for (int32_t k = 0; k < n_nodes; k++)
            for (int64_t f = feed_offsets[k]; f < feed_offsets[k + 1]; f++) {
                const edge_t *e = edges + feeds[f];
                int64_t lo, hi;
                part(e->n_post, &lo, &hi);
                deliver(e, nodes + k, parity, populations + e->target, t, lo, hi);
            }
    }
    for (int32_t q = 0; q < n_plastic; q++) {
        edge_t *e = edges + plastic[q];
        plasticity(e, nodes + plastic_nodes[2 * q], nodes + plastic_nodes[2 * q + 1], parity, populations + e->target, t,
                   team);
        SYNC(team);
    }
}

/* Steps t0 .. t0 + steps - 1 in passes of ``pass_steps`` from t0 (no plastic edge), as the graph
 * runner takes them: each node in turn runs every step of the pass, then each of its edges delivers the
 * pass's spikes, a step at a time, so that every ring slot sums its inputs in the runner's order.
 * A thread updates and delivers into its own range of neurons, so the one barrier a node needs is
 * before its edges read every thread's spikes; inputs, known in advance, need none. */
static void passes(int64_t t0, int64_t steps, int64_t pass_steps, int32_t n_nodes, node_t *nodes, population_t *populations,
                   const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int team) {
    for (int64_t first = 0; first < steps; first += pass_steps) {
        const int64_t last = first + pass_steps < steps ? first + pass_steps : steps;
        for (int32_t k = 0; k < n_nodes; k++) {
            node_t *node = nodes + k;
            const uint8_t *rows = node->input;
            if (node->population >= 0) {
                population_t *p = populations + node->population;
                int64_t lo, hi;
                part(node->n, &lo, &hi);
                for (int64_t s = first; s < last; s++) update(p, t0 + s, s, lo, hi);
                rows = p->spikes;
                if (feed_offsets[k] < feed_offsets[k + 1]) SYNC(team);
            }
            for (int64_t f = feed_offsets[k]; f < feed_offsets[k + 1]; f++) {
                const edge_t *e = edges + feeds[f];
                int64_t lo, hi;
                part(e->n_post, &lo, &hi);
                for (int64_t s = first; s < last; s++)
                    deliver_scan(e, rows + s * node->n, populations + e->target, t0 + s, lo, hi);
            }
        }
    }
}

/* Steps t0 .. t0 + steps - 1. ``nodes`` in the order they run; ``feeds[feed_offsets[k] ..
 * feed_offsets[k + 1]]`` the non-plastic edges from node k, in edge order; ``plastic`` the plastic
 * edges in edge order, ``plastic_nodes[2 p]`` and ``[2 p + 1]`` the nodes of the source and the
 * target of plastic edge p. ``pass_steps`` above 1 (never with a plastic edge): in passes of that
 * many steps (``passes``); else a step at a time. With one thread the region is not parallel. */
void network_run(int64_t t0, int64_t steps, int32_t n_nodes, node_t *nodes, population_t *populations,
                 const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int32_t n_plastic,
                 const int32_t *plastic, const int32_t *plastic_nodes, int threads, int undelayed, int64_t pass_steps) {
    threads = threads < MAX_THREADS ? threads : MAX_THREADS;
    const int team = threads > 1;
#pragma omp parallel num_threads(threads) if (team)
    {
        if (pass_steps > 1)
            passes(t0, steps, pass_steps, n_nodes, nodes, populations, feed_offsets, feeds, edges, team);
        else
            for (int64_t s = 0; s < steps; s++)
                step(t0 + s, s, n_nodes, nodes, populations, feed_offsets, feeds, edges, n_plastic, plastic, plastic_nodes,
                     team, undelayed);
    }
}
