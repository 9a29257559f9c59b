/* A whole graph of LIF populations with synaptic channels, their sparse (and plastic) projections
 * and their spike inputs, stepped in one call per chunk: the per-pass work of the Python graph
 * runner (a pass per step when a cycle has a one-step delay, as CUBA's and COBA's) done here.
 *
 * Each step does what worker.simulation.graph_runner does with passes of one step, in its order
 * and with its float32 operations (see worker/engine/lif_channels.py and plasticity.py): the
 * nodes in the graph's order, each population's update from its input rings, then each node's
 * non-plastic edges adding its spikes to their targets' rings; then every plastic edge's
 * plasticity phase (decay, presynaptic events with delivery and depression, postsynaptic events
 * with potentiation). A thread owns a range of neurons in the updates and a range of targets in
 * the deliveries and weight changes, so every sum is taken in one order (spiking sources in
 * ascending index, each row's synapses in order) whatever the number of threads.
 */
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
} population_t;

typedef struct {
    int32_t population; /* its index among the populations, or -1: an input */
    int64_t n;
    const uint8_t *input; /* an input's counts, steps x n */
    int32_t *fired;       /* scratch (n): the neurons that spiked this step, ascending */
    int64_t n_fired;
    const uint8_t *now;   /* this step's spikes or counts (n) */
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
    const int32_t *pre, *by_post; /* each synapse's source; the synapses by target */
    const int64_t *by_post_offsets;
    float *x_pre, *x_post;
    float decay_pre, decay_post, a_pre, a_post, w_min, w_max, inv_span;
    uint8_t *history; /* shared_delay rows of n_pre: the source's spikes of the last steps, row = step % delay */
} edge_t;

static int64_t first_at_least(const int32_t *post, int64_t lo, int64_t hi, int64_t target) {
    while (lo < hi) {
        const int64_t mid = lo + (hi - lo) / 2;
        if (post[mid] < target) lo = mid + 1;
        else hi = mid;
    }
    return lo;
}

static inline void part(int64_t n, int64_t *lo, int64_t *hi) {
    const int64_t threads = omp_get_num_threads(), me = omp_get_thread_num(), width = (n + threads - 1) / threads;
    *lo = me * width < n ? me * width : n;
    *hi = *lo + width < n ? *lo + width : n;
}

static void update(population_t *p, int64_t t, int64_t s, int64_t lo, int64_t hi) {
    const int64_t n = p->n, slot = (t % p->slots) * n;
    float *delta = p->rings[0] + slot;
    for (int64_t i = lo; i < hi; i++) {
        const float v = p->v[i];
        float v_new;
        if (p->exact) {
            v_new = (v - p->v_leak[i]) * p->membrane[i];
            for (int32_t k = 0; k < p->channels; k++) {
                float *in = p->rings[1 + k] + slot + i;
                const float g = p->g[k * n + i] + *in;
                *in = 0.0f;
                v_new = v_new + g * p->gain[k * n + i];
                p->g[k * n + i] = g * p->decay[k];
            }
            v_new = v_new + p->v_leak[i];
        } else {
            float drive = p->v_leak[i] - v;
            for (int32_t k = 0; k < p->channels; k++) {
                float *in = p->rings[1 + k] + slot + i;
                const float g = p->g[k * n + i] + *in;
                *in = 0.0f;
                drive = drive + (p->conductance[k] ? g * (p->e_rev[k] - v) : g);
                p->g[k * n + i] = g * p->decay[k];
            }
            v_new = v + p->membrane[i] * drive;
        }
        v_new = v_new + delta[i];
        delta[i] = 0.0f;
        const int refractory = p->rho[i] > 0.0f;
        const int z = !refractory && v_new > p->v_th[i];
        p->v[i] = refractory ? v : (z ? p->v_reset[i] : v_new);
        const float left = p->rho[i] - 1.0f;
        p->rho[i] = z ? p->rho_reset[i] : (left > 0.0f ? left : 0.0f);
        p->spikes[s * n + i] = (uint8_t)z;
        if (p->v_trace) p->v_trace[s * n + i] = p->v[i];
    }
}

/* The synapses of source i whose targets are in [lo, hi): [*start, *stop). */
static inline void row_part(const edge_t *e, int64_t i, int64_t lo, int64_t hi, int64_t *start, int64_t *stop) {
    *start = first_at_least(e->post, e->offsets[i], e->offsets[i + 1], lo);
    *stop = first_at_least(e->post, *start, e->offsets[i + 1], hi);
}

static void deliver(const edge_t *e, const node_t *from, population_t *to, int64_t t, int64_t lo, int64_t hi) {
    float *ring = to->rings[e->row];
    const int64_t n = to->n;
    for (int64_t f = 0; f < from->n_fired; f++) {
        const int64_t i = from->fired[f];
        int64_t start, stop;
        row_part(e, i, lo, hi, &start, &stop);
        for (uint8_t c = from->now[i]; c; c--) {
            if (!e->delay) {
                float *slot = ring + ((t + e->shared_delay) % to->slots) * n;
                if (e->weight)
                    for (int64_t s = start; s < stop; s++) slot[e->post[s]] += e->weight[s];
                else
                    for (int64_t s = start; s < stop; s++) slot[e->post[s]] += e->shared_weight;
                continue;
            }
            for (int64_t s = start; s < stop; s++)
                ring[((t + e->delay[s]) % to->slots) * n + e->post[s]] += e->weight ? e->weight[s] : e->shared_weight;
        }
    }
}

static inline float bounded(const edge_t *e, float w, float change) {
    if (e->soft) {
        const float room = change > 0.0f ? e->w_max - w : w - e->w_min;
        change = change * (room * e->inv_span);
    }
    float x = w + change;
    x = x < e->w_min ? e->w_min : x;
    return x > e->w_max ? e->w_max : x;
}

/* The plasticity phase of step t for one edge, by a thread owning targets [lo, hi) (and sources
 * [src_lo, src_hi) for the presynaptic traces). Barriers separate what other threads read. */
static void plasticity(edge_t *e, const node_t *from, const node_t *post_node, population_t *to, int64_t t) {
    int64_t lo, hi, src_lo, src_hi;
    part(e->n_post, &lo, &hi);
    part(e->n_pre, &src_lo, &src_hi);
    const int64_t delay = e->shared_delay;
    uint8_t *now = e->history + (t % delay) * e->n_pre;
    const uint8_t *events = e->history + ((t + 1) % delay) * e->n_pre; /* step t - delay + 1 */
    for (int64_t i = src_lo; i < src_hi; i++) now[i] = from->now[i];
    for (int64_t i = src_lo; i < src_hi; i++) e->x_pre[i] *= e->decay_pre;
    for (int64_t j = lo; j < hi; j++) e->x_post[j] *= e->decay_post;
#pragma omp barrier
    float *ring = to->rings[e->row] + ((t + 1) % to->slots) * to->n;
    for (int64_t i = 0; i < e->n_pre; i++) {
        if (!events[i]) continue;
        int64_t start, stop;
        row_part(e, i, lo, hi, &start, &stop);
        for (int64_t s = start; s < stop; s++) {
            const int32_t j = e->post[s];
            ring[j] += e->weight[s];
            e->weight[s] = bounded(e, e->weight[s], e->x_post[j]);
        }
    }
    for (int64_t i = src_lo; i < src_hi; i++)
        if (events[i]) e->x_pre[i] = e->nearest ? e->a_pre : e->x_pre[i] + e->a_pre;
#pragma omp barrier
    for (int64_t f = 0; f < post_node->n_fired; f++) {
        const int64_t j = post_node->fired[f];
        if (j < lo || j >= hi) continue;
        e->x_post[j] = e->nearest ? e->a_post : e->x_post[j] + e->a_post;
        for (int64_t k = e->by_post_offsets[j]; k < e->by_post_offsets[j + 1]; k++) {
            const int64_t s = e->by_post[k];
            e->weight[s] = bounded(e, e->weight[s], e->x_pre[e->pre[s]]);
        }
    }
}

static void list_fired(node_t *node) {
    int64_t count = 0;
    for (int64_t i = 0; i < node->n; i++)
        if (node->now[i]) node->fired[count++] = (int32_t)i;
    node->n_fired = count;
}

/* Steps t0 .. t0 + steps - 1. ``nodes`` in the order they run; ``feeds[feed_offsets[k] ..
 * feed_offsets[k + 1]]`` the non-plastic edges from node k, in edge order; ``plastic`` the plastic
 * edges in edge order, ``plastic_nodes[2 p]`` and ``[2 p + 1]`` the nodes of the source and the
 * target of plastic edge p. */
void network_run(int64_t t0, int64_t steps, int32_t n_nodes, node_t *nodes, population_t *populations,
                 const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int32_t n_plastic,
                 const int32_t *plastic, const int32_t *plastic_nodes, int threads) {
#pragma omp parallel num_threads(threads)
    for (int64_t s = 0; s < steps; s++) {
        const int64_t t = t0 + s;
        for (int32_t k = 0; k < n_nodes; k++) {
            node_t *node = nodes + k;
            if (node->population >= 0) {
                population_t *p = populations + node->population;
                int64_t lo, hi;
                part(p->n, &lo, &hi);
                update(p, t, s, lo, hi);
#pragma omp barrier
            }
#pragma omp single
            {
                node->now = node->population >= 0 ? populations[node->population].spikes + s * node->n
                                                  : node->input + s * node->n;
                list_fired(node);
            }
            for (int64_t f = feed_offsets[k]; f < feed_offsets[k + 1]; f++) {
                const edge_t *e = edges + feeds[f];
                int64_t lo, hi;
                part(e->n_post, &lo, &hi);
                deliver(e, node, populations + e->target, t, lo, hi);
            }
#pragma omp barrier
        }
        for (int32_t q = 0; q < n_plastic; q++) {
            edge_t *e = edges + plastic[q];
            plasticity(e, nodes + plastic_nodes[2 * q], nodes + plastic_nodes[2 * q + 1], populations + e->target, t);
#pragma omp barrier
        }
    }
}
