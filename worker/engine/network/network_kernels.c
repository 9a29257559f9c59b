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

/* Pointers are read into restrict-qualified locals: the spikes are bytes, which may alias
 * anything, and would otherwise make every iteration reload the structure's fields. */
static void update(const population_t *p, int64_t t, int64_t s, int64_t lo, int64_t hi) {
    const int64_t n = p->n, slot = (t % p->slots) * n;
    const int32_t channels = p->channels;
    float *restrict v = p->v, *restrict rho = p->rho, *restrict g = p->g, *restrict delta = p->rings[0] + slot;
    const float *restrict v_leak = p->v_leak, *restrict v_th = p->v_th, *restrict v_reset = p->v_reset;
    const float *restrict rho_reset = p->rho_reset, *restrict membrane = p->membrane, *restrict gain = p->gain;
    const float *restrict decay = p->decay, *restrict e_rev = p->e_rev;
    const uint8_t *restrict conductance = p->conductance;
    uint8_t *restrict spikes = p->spikes + s * n;
    float *restrict trace = p->v_trace ? p->v_trace + s * n : NULL;
    float *in[16];
    for (int32_t k = 0; k < channels && k < 16; k++) in[k] = p->rings[1 + k] + slot;
    for (int64_t i = lo; i < hi; i++) {
        const float v_old = v[i];
        float v_new;
        if (p->exact) {
            v_new = (v_old - v_leak[i]) * membrane[i];
            for (int32_t k = 0; k < channels; k++) {
                const float g_k = g[k * n + i] + in[k][i];
                in[k][i] = 0.0f;
                v_new = v_new + g_k * gain[k * n + i];
                g[k * n + i] = g_k * decay[k];
            }
            v_new = v_new + v_leak[i];
        } else {
            float drive = v_leak[i] - v_old;
            for (int32_t k = 0; k < channels; k++) {
                const float g_k = g[k * n + i] + in[k][i];
                in[k][i] = 0.0f;
                drive = drive + (conductance[k] ? g_k * (e_rev[k] - v_old) : g_k);
                g[k * n + i] = g_k * decay[k];
            }
            v_new = v_old + membrane[i] * drive;
        }
        v_new = v_new + delta[i];
        delta[i] = 0.0f;
        const int refractory = rho[i] > 0.0f;
        const int z = !refractory && v_new > v_th[i];
        v[i] = refractory ? v_old : (z ? v_reset[i] : v_new);
        const float left = rho[i] - 1.0f;
        rho[i] = z ? rho_reset[i] : (left > 0.0f ? left : 0.0f);
        spikes[i] = (uint8_t)z;
        if (trace) trace[i] = v[i];
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
/* A barrier where a team runs the step (``team``), nothing where one thread does. */
#define SYNC(team)                   \
    do {                             \
        if (team) {                  \
            _Pragma("omp barrier");  \
        }                            \
    } while (0)

static void plasticity(edge_t *e, const node_t *from, const node_t *post_node, population_t *to, int64_t t, int team) {
    int64_t lo, hi, src_lo, src_hi;
    part(e->n_post, &lo, &hi);
    part(e->n_pre, &src_lo, &src_hi);
    const int64_t delay = e->shared_delay, n_pre = e->n_pre;
    uint8_t *restrict now = e->history + (t % delay) * n_pre;
    const uint8_t *restrict emitted = from->now;
    float *restrict x_pre = e->x_pre, *restrict x_post = e->x_post, *restrict w = e->weight;
    const float decay_pre = e->decay_pre, decay_post = e->decay_post, a_pre = e->a_pre, a_post = e->a_post;
    const int32_t *restrict post = e->post, *restrict pre = e->pre, *restrict by_post = e->by_post;
    const int64_t *restrict by_post_offsets = e->by_post_offsets;
    const int nearest = e->nearest;
    memcpy(now + src_lo, emitted + src_lo, (size_t)(src_hi - src_lo));
    for (int64_t i = src_lo; i < src_hi; i++) x_pre[i] *= decay_pre;
    for (int64_t j = lo; j < hi; j++) x_post[j] *= decay_post;
    SYNC(team);
    const uint8_t *restrict events = e->history + ((t + 1) % delay) * n_pre; /* step t - delay + 1 */
    float *restrict ring = to->rings[e->row] + ((t + 1) % to->slots) * to->n;
    for (int64_t i = 0; i < n_pre; i++) {
        if (!(i & 7) && i + 8 <= n_pre) { /* quiet words skipped eight sources at a time */
            uint64_t word;
            memcpy(&word, events + i, 8);
            if (!word) {
                i += 7;
                continue;
            }
        }
        if (!events[i]) continue;
        int64_t start, stop;
        row_part(e, i, lo, hi, &start, &stop);
        for (int64_t s = start; s < stop; s++) {
            const int32_t j = post[s];
            ring[j] += w[s];
            w[s] = bounded(e, w[s], x_post[j]);
        }
    }
    for (int64_t i = src_lo; i < src_hi; i++) {
        const float raised = nearest ? a_pre : x_pre[i] + a_pre;
        x_pre[i] = events[i] ? raised : x_pre[i];
    }
    SYNC(team);
    for (int64_t f = 0; f < post_node->n_fired; f++) {
        const int64_t j = post_node->fired[f];
        if (j < lo || j >= hi) continue;
        x_post[j] = nearest ? a_post : x_post[j] + a_post;
        for (int64_t k = by_post_offsets[j]; k < by_post_offsets[j + 1]; k++) {
            const int32_t s = by_post[k];
            w[s] = bounded(e, w[s], x_pre[pre[s]]);
        }
    }
}

/* The spiking neurons of this step, ascending; eight bytes at a time, most steps being quiet. */
static void list_fired(node_t *node) {
    const uint8_t *restrict now = node->now;
    int32_t *restrict fired = node->fired;
    const int64_t n = node->n;
    int64_t count = 0, i = 0;
    for (; i + 8 <= n; i += 8) {
        uint64_t word;
        memcpy(&word, now + i, 8);
        if (!word) continue;
        for (int64_t b = i; b < i + 8; b++)
            if (now[b]) fired[count++] = (int32_t)b;
    }
    for (; i < n; i++)
        if (now[i]) fired[count++] = (int32_t)i;
    node->n_fired = count;
}

/* One step t (the chunk's step s) of every node and edge, by this thread of a team, or alone. */
static void step(int64_t t, int64_t s, int32_t n_nodes, node_t *nodes, population_t *populations,
                 const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int32_t n_plastic,
                 const int32_t *plastic, const int32_t *plastic_nodes, int team) {
    for (int32_t k = 0; k < n_nodes; k++) {
        node_t *node = nodes + k;
        if (node->population >= 0) {
            population_t *p = populations + node->population;
            int64_t lo, hi;
            part(p->n, &lo, &hi);
            update(p, t, s, lo, hi);
            SYNC(team);
        }
        if (omp_get_thread_num() == 0) {
            node->now = node->population >= 0 ? populations[node->population].spikes + s * node->n
                                              : node->input + s * node->n;
            list_fired(node);
        }
        SYNC(team);
        for (int64_t f = feed_offsets[k]; f < feed_offsets[k + 1]; f++) {
            const edge_t *e = edges + feeds[f];
            int64_t lo, hi;
            part(e->n_post, &lo, &hi);
            deliver(e, node, populations + e->target, t, lo, hi);
        }
        if (feed_offsets[k + 1] > feed_offsets[k]) SYNC(team);
    }
    for (int32_t q = 0; q < n_plastic; q++) {
        edge_t *e = edges + plastic[q];
        plasticity(e, nodes + plastic_nodes[2 * q], nodes + plastic_nodes[2 * q + 1], populations + e->target, t, team);
        SYNC(team);
    }
}

/* Steps t0 .. t0 + steps - 1. ``nodes`` in the order they run; ``feeds[feed_offsets[k] ..
 * feed_offsets[k + 1]]`` the non-plastic edges from node k, in edge order; ``plastic`` the plastic
 * edges in edge order, ``plastic_nodes[2 p]`` and ``[2 p + 1]`` the nodes of the source and the
 * target of plastic edge p. With one thread no team is made: a team's barriers, several a step,
 * would be most of a small network's time. */
void network_run(int64_t t0, int64_t steps, int32_t n_nodes, node_t *nodes, population_t *populations,
                 const int64_t *feed_offsets, const int32_t *feeds, edge_t *edges, int32_t n_plastic,
                 const int32_t *plastic, const int32_t *plastic_nodes, int threads) {
    if (threads <= 1) {
        for (int64_t s = 0; s < steps; s++)
            step(t0 + s, s, n_nodes, nodes, populations, feed_offsets, feeds, edges, n_plastic, plastic, plastic_nodes, 0);
        return;
    }
#pragma omp parallel num_threads(threads)
    for (int64_t s = 0; s < steps; s++)
        step(t0 + s, s, n_nodes, nodes, populations, feed_offsets, feeds, edges, n_plastic, plastic, plastic_nodes, 1);
}
