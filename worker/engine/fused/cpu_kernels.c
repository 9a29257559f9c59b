/* Fused multi-step CPU kernels for the LIF family (LIF, LIFBox, LI, IAF, ALIF).
 *
 * One call runs a layer's whole time loop. Neurons are split into blocks; a block's state and
 * coefficients live in small local arrays (registers and L1) for all T steps, so memory traffic
 * per step is the input row, the spikes written (one byte each) and whatever the caller asked to
 * keep. The inner loop over a block is branch-free and vectorises.
 *
 * The arithmetic is the reference step functions' operation for operation (and this file is
 * compiled with -ffp-contract=off), so the results equal the eager engine bit for bit. The
 * coefficients a = dt*tau_mem_inv, c = -dt*tau_syn_inv, e = -dt*tau_adapt_inv are computed by
 * the caller with PyTorch, exactly as the step functions compute them.
 *
 * One generic block function holds the dynamics; each model's entry point calls it with a
 * constant model number, and the compiler specialises it (the unused branches disappear).
 */
#include <math.h>
#include <stdint.h>
#include <stddef.h>

/* MODEL_*, SUR_*, FOR_EACH_MODEL and what each model has (HAS_CURRENT, SPIKING, ADAPTIVE, LEAKY),
 * generated from the model registry. */
#include "models.h"

#define BLOCK 256
/* A block reads one short row per step, each on another page: the hardware prefetcher does not
 * follow that stride, so the row a few steps ahead is requested explicitly (measured on W1: about
 * 10% faster with 2 to 16 steps ahead). */
#define PREFETCH_STEPS 4

/* Per-neuron coefficient arrays, each of length N; fields a model does not use may be NULL. A field
 * whose bit is set in `shared` (bit 0: a, ..., bit 7: alpha, in this order) points at one value
 * that every neuron shares: a layer's parameters usually are, and expanding them to N values cost
 * a small job more than its simulation. */
typedef struct {
    const float *a, *c, *e, *v_leak, *v_th, *v_reset, *beta, *alpha;
    uint32_t shared;
} coeffs_t;

/* Where a forward pass writes; any pointer may be NULL. Arrays are (T, N), row-major. */
typedef struct {
    uint8_t *spikes_u8;  /* spikes as 0/1 bytes */
    float *out_f;        /* spikes as 0.0/1.0 (or LI's voltage) */
    float *saved_vd;     /* the membrane before threshold and reset, for the backward pass */
    float *saved_bd;     /* ALIF: the decayed threshold excess, for the backward pass */
    float *rec_v, *rec_i, *rec_b;  /* the state after every step */
} outputs_t;

static inline void load(float *dst, const float *src, int64_t j0, int64_t n) {
    if (src) for (int64_t k = 0; k < n; k++) dst[k] = src[j0 + k];
    else for (int64_t k = 0; k < n; k++) dst[k] = 0.0f;
}

static inline void load_coeff(float *dst, const float *src, int shared, int64_t j0, int64_t n) {
    if (src && shared) for (int64_t k = 0; k < n; k++) dst[k] = src[0];
    else load(dst, src, j0, n);
}

static inline void store(float *restrict dst, const float *restrict src, int64_t j0, int64_t n) {
    if (dst) for (int64_t k = 0; k < n; k++) dst[j0 + k] = src[k];
}

/* A block's coefficients, in local arrays for all T steps; a model's unused ones stay zero. */
typedef struct {
    float a[BLOCK], c[BLOCK], e[BLOCK], v_leak[BLOCK], v_th[BLOCK], v_reset[BLOCK], beta[BLOCK], alpha[BLOCK];
} block_coeffs_t;

static inline void load_coeffs(const int model, const coeffs_t *p, int64_t j0, int64_t n, block_coeffs_t *k) {
    const uint32_t s = p->shared;
    load_coeff(k->a, LEAKY(model) ? p->a : NULL, s & 1u, j0, n);
    load_coeff(k->c, HAS_CURRENT(model) ? p->c : NULL, s & 2u, j0, n);
    load_coeff(k->e, ADAPTIVE(model) ? p->e : NULL, s & 4u, j0, n);
    load_coeff(k->v_leak, LEAKY(model) ? p->v_leak : NULL, s & 8u, j0, n);
    load_coeff(k->v_th, SPIKING(model) ? p->v_th : NULL, s & 16u, j0, n);
    load_coeff(k->v_reset, SPIKING(model) ? p->v_reset : NULL, s & 32u, j0, n);
    load_coeff(k->beta, ADAPTIVE(model) ? p->beta : NULL, s & 64u, j0, n);
    load_coeff(k->alpha, SPIKING(model) ? p->alpha : NULL, s & 128u, j0, n);
}

/* The state (or its gradient): v always, i with a synaptic current, b with adaptation. */
static inline void load_state(const int model, float *V, float *I, float *B, const float *v, const float *i,
                              const float *b, int64_t j0, int64_t n) {
    load(V, v, j0, n);
    load(I, HAS_CURRENT(model) ? i : NULL, j0, n);
    load(B, ADAPTIVE(model) ? b : NULL, j0, n);
}

static inline void store_state(const int model, float *v, float *i, float *b, const float *V, const float *I,
                               const float *B, int64_t j0, int64_t n) {
    store(v, V, j0, n);
    if (HAS_CURRENT(model)) store(i, I, j0, n);
    if (ADAPTIVE(model)) store(b, B, j0, n);
}

static inline void forward_block(const int model, const int subtract, int64_t T, int64_t N, int64_t j0, int64_t n,
                                 const float *x, int64_t x_stride_t, float *v, float *i, float *b,
                                 const coeffs_t *p, const outputs_t *o) {
    float V[BLOCK], I[BLOCK], B[BLOCK], Z[BLOCK], VD[BLOCK], BD[BLOCK];
    block_coeffs_t k;
    load_state(model, V, I, B, v, i, b, j0, n);
    load_coeffs(model, p, j0, n, &k);
    const float *const A = k.a, *const C = k.c, *const E = k.e, *const VL = k.v_leak;
    const float *const VT = k.v_th, *const VR = k.v_reset, *const BE = k.beta;
    /* The outputs are copied to locals: stores through a uint8_t pointer may alias anything, and
     * the compiler would otherwise reload every pointer after each store and not vectorise. */
    uint8_t *const spikes_u8 = o->spikes_u8;
    float *const out_f = o->out_f, *const saved_vd = o->saved_vd, *const saved_bd = o->saved_bd;
    float *const rec_v = o->rec_v, *const rec_i = o->rec_i, *const rec_b = o->rec_b;
    for (int64_t t = 0; t < T; t++) {
        const float *restrict xt = x + t * x_stride_t + j0;
        const int64_t row = t * N + j0;
        if (t + PREFETCH_STEPS < T) {
            const char *ahead = (const char *)(xt + PREFETCH_STEPS * x_stride_t);
            for (int64_t byte = 0; byte < n * (int64_t)sizeof(float); byte += 64) __builtin_prefetch(ahead + byte, 0, 0);
        }
        /* The dynamics: one branch-free pass over the block, all in local arrays. */
        for (int64_t k = 0; k < n; k++) {
            float vd, id = 0.0f;
            if (model == MODEL_IAF) {
                vd = V[k] + xt[k];
            } else if (model == MODEL_LIFBOX) {
                vd = V[k] + A[k] * ((xt[k] + VL[k]) - V[k]);
            } else {
                const float ij = I[k] + xt[k];
                vd = V[k] + A[k] * ((VL[k] - V[k]) + ij);
                id = ij + C[k] * ij;
            }
            I[k] = id;
            VD[k] = vd;
            if (model == MODEL_LI) {
                V[k] = vd;
                continue;
            }
            float th = VT[k], bd = 0.0f;
            if (model == MODEL_ALIF) {
                bd = B[k] + E[k] * B[k];
                th = VT[k] + bd;
            }
            const float z = (vd - th) > 0.0f ? 1.0f : 0.0f;
            V[k] = subtract ? vd - z * (th - VR[k]) : (1.0f - z) * vd + z * VR[k];
            Z[k] = z;
            BD[k] = bd;
            if (model == MODEL_ALIF) B[k] = bd + BE[k] * z;
        }
        /* Then what the caller asked for, each in a simple copy loop. */
        if (model == MODEL_LI) {
            store(out_f + t * N, VD, j0, n);
        } else {
            if (spikes_u8) for (int64_t k = 0; k < n; k++) spikes_u8[row + k] = (uint8_t)Z[k];
            if (out_f) store(out_f + t * N, Z, j0, n);
            if (saved_vd) store(saved_vd + t * N, VD, j0, n);
            if (saved_bd) store(saved_bd + t * N, BD, j0, n);
        }
        if (rec_v) store(rec_v + t * N, V, j0, n);
        if (rec_i) store(rec_i + t * N, I, j0, n);
        if (rec_b) store(rec_b + t * N, B, j0, n);
    }
    store_state(model, v, i, b, V, I, B, j0, n);
}

/* d spike / d s times g, for s = v - threshold; the same formulas as worker/engine/threshold.py. */
static inline float surrogate(const int method, float g, float s, float alpha) {
    switch (method) {
    case SUR_SUPER: { const float d = fabsf(s) + 1.0f; return g / (d * d); }
    case SUR_FAST_SIGMOID: { const float d = alpha * fabsf(s) + 1.0f; return g / (d * d); }
    case SUR_TRIANGLE: { const float r = 1.0f - fabsf(s); return g * alpha * (r > 0.0f ? r : 0.0f); }
    case SUR_TANH: { const float th = tanhf(s * alpha); return g * (1.0f - th * th); }
    case SUR_ATAN: { const float q = 1.5707963267948966f * alpha * s; return g * (alpha / 2.0f) / (1.0f + q * q); }
    default: return 0.0f;
    }
}

/* Backward through time for one block. grad_out is (T, N) (the spikes' or LI's voltage's
 * gradient); gv, gi, gb hold the final state's gradient on entry (NULL: zero) and the initial
 * state's gradient on return; grad_x (T, N) receives the input's gradient. */
static inline void backward_block(const int model, const int subtract, const int method, int64_t T, int64_t N,
                                  int64_t j0, int64_t n, const float *grad_out, const float *saved_vd,
                                  const float *saved_bd, float *gv, float *gi, float *gb, float *grad_x,
                                  const coeffs_t *p) {
    float GV[BLOCK], GI[BLOCK], GB[BLOCK];
    block_coeffs_t k;
    load_state(model, GV, GI, GB, gv, gi, gb, j0, n);
    load_coeffs(model, p, j0, n, &k);
    const float *const A = k.a, *const C = k.c, *const E = k.e, *const VT = k.v_th, *const VR = k.v_reset;
    const float *const BE = k.beta, *const AL = k.alpha;
    for (int64_t t = T - 1; t >= 0; t--) {
        const int64_t row = t * N + j0;
        for (int64_t k = 0; k < n; k++) {
            const float g_out = grad_out ? grad_out[row + k] : 0.0f;
            float g_vd;
            if (model == MODEL_LI) {
                g_vd = g_out + GV[k];
            } else {
                const float vd = saved_vd[row + k];
                float th = VT[k], bd = 0.0f;
                if (model == MODEL_ALIF) {
                    bd = saved_bd[row + k];
                    th = VT[k] + bd;
                }
                const float s = vd - th;
                const float z = s > 0.0f ? 1.0f : 0.0f;
                float g_z = g_out, g_th = 0.0f;
                if (model == MODEL_ALIF) g_z += GB[k] * BE[k];
                if (subtract) {
                    g_vd = GV[k];
                    g_z -= GV[k] * (th - VR[k]);
                    g_th = -(GV[k] * z);
                } else {
                    g_vd = GV[k] * (1.0f - z);
                    g_z += GV[k] * (VR[k] - vd);
                }
                const float g_s = surrogate(method, g_z, s, AL[k]);
                g_vd += g_s;
                if (model == MODEL_ALIF) {
                    const float g_bd = GB[k] + (g_th - g_s);
                    GB[k] = g_bd + E[k] * g_bd;
                }
            }
            float g_in;
            if (model == MODEL_IAF) {
                g_in = g_vd;
                GV[k] = g_vd;
            } else if (model == MODEL_LIFBOX) {
                g_in = A[k] * g_vd;
                GV[k] = g_vd - A[k] * g_vd;
            } else {
                const float g_ij = (GI[k] + C[k] * GI[k]) + A[k] * g_vd;
                g_in = g_ij;
                GI[k] = g_ij;
                GV[k] = g_vd - A[k] * g_vd;
            }
            grad_x[row + k] = g_in;
        }
    }
    store_state(model, gv, gi, gb, GV, GI, GB, j0, n);
}

#define BLOCKS(N) (((N) + BLOCK - 1) / BLOCK)
/* Below this many neuron-steps one thread is faster: waking a team (and its threads spinning after
 * the region, taking a core from the API and Redis) costs more than the work. */
#define PARALLEL_MIN_WORK (1 << 18)

#define DEFINE_MODEL(name, model)                                                                              \
    void name##_forward(int64_t T, int64_t N, const float *x, int64_t x_stride_t, float *v, float *i, float *b, \
                        const coeffs_t *p, const outputs_t *o, int subtract, int threads) {                     \
        _Pragma("omp parallel for schedule(static) num_threads(threads) if (T * N >= PARALLEL_MIN_WORK)")       \
        for (int64_t blk = 0; blk < BLOCKS(N); blk++) {                                                         \
            const int64_t j0 = blk * BLOCK, n = N - j0 < BLOCK ? N - j0 : BLOCK;                                \
            if (subtract) forward_block(model, 1, T, N, j0, n, x, x_stride_t, v, i, b, p, o);                   \
            else forward_block(model, 0, T, N, j0, n, x, x_stride_t, v, i, b, p, o);                            \
        }                                                                                                      \
    }                                                                                                          \
    void name##_backward(int64_t T, int64_t N, const float *grad_out, const float *saved_vd,                    \
                         const float *saved_bd, float *gv, float *gi, float *gb, float *grad_x,                 \
                         const coeffs_t *p, int subtract, int method, int threads) {                            \
        _Pragma("omp parallel for schedule(static) num_threads(threads) if (T * N >= PARALLEL_MIN_WORK)")       \
        for (int64_t blk = 0; blk < BLOCKS(N); blk++) {                                                         \
            const int64_t j0 = blk * BLOCK, n = N - j0 < BLOCK ? N - j0 : BLOCK;                                \
            backward_block(model, subtract, method, T, N, j0, n, grad_out, saved_vd, saved_bd, gv, gi, gb,      \
                           grad_x, p);                                                                         \
        }                                                                                                      \
    }

FOR_EACH_MODEL(DEFINE_MODEL)
