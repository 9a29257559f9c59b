/* The box LIF with a refractory period (LIFBoxRefrac) on the CPU, forward only: a whole sequence
 * of steps in one call, each neuron's state kept in registers across the steps. With delta
 * synapses it is the neuron of Brunel's (2000) network, whose every step the eager engine would
 * otherwise run as about twenty small tensor operations.
 *
 * Each line is the eager step's operation (worker.engine.lif_box, worker.engine.lif_refrac) in
 * the same order, compiled with -ffp-contract=off, so spikes and states equal the eager engine's
 * bit for bit. ``a`` = dt * tau_mem_inv is computed by the caller as the step computes it.
 */
#include <stdint.h>

#define BLOCK 256

/* x (steps, n) input; v, rho (n) the state, updated in place; a, v_leak, v_th, v_reset, rho_reset
 * (n) per-neuron parameters; spikes (steps, n) 0/1 bytes. delta: the input jumps into the
 * membrane (else it drives it as a current); subtract: the reset subtracts v_th - v_reset (else
 * it sets v_reset). */
void box_refrac_forward(int64_t steps, int64_t n, const float *x, float *v, float *rho, const float *a, const float *v_leak,
                        const float *v_th, const float *v_reset, const float *rho_reset, int delta, int subtract,
                        uint8_t *spikes, int threads) {
    const int64_t blocks = (n + BLOCK - 1) / BLOCK;
#pragma omp parallel for schedule(static) num_threads(steps * n < (1 << 16) ? 1 : threads)
    for (int64_t block = 0; block < blocks; block++) {
        const int64_t j0 = block * BLOCK, count = j0 + BLOCK < n ? BLOCK : n - j0;
        float V[BLOCK], R[BLOCK];
        for (int64_t k = 0; k < count; k++) {
            V[k] = v[j0 + k];
            R[k] = rho[j0 + k];
        }
        for (int64_t t = 0; t < steps; t++) {
            const float *xt = x + t * n + j0;
            uint8_t *zt = spikes + t * n + j0;
            for (int64_t k = 0; k < count; k++) {
                const int64_t j = j0 + k;
                const float before = V[k];
                const float vd = delta ? before + a[j] * (v_leak[j] - before) + xt[k]
                                       : before + a[j] * (xt[k] + v_leak[j] - before);
                float z = (vd - v_th[j]) > 0.0f ? 1.0f : 0.0f;
                const float reset = subtract ? vd - z * (v_th[j] - v_reset[j]) : (1.0f - z) * vd + z * v_reset[j];
                const float held = R[k] > 0.0f ? 1.0f : 0.0f;
                V[k] = (1.0f - held) * reset + held * before;
                z = (1.0f - held) * z;
                const float left = R[k] - held;
                R[k] = (1.0f - z) * (left > 0.0f ? left : 0.0f) + z * rho_reset[j];
                zt[k] = (uint8_t)(z != 0.0f);
            }
        }
        for (int64_t k = 0; k < count; k++) {
            v[j0 + k] = V[k];
            rho[j0 + k] = R[k];
        }
    }
}
