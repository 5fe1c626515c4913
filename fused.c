/*
 * minGRU's and minLSTM's cells and the causal depthwise conv before them, forward and backward, as plain C loops:
 * the CPU's fast path for fused.py, which compiles this file with the system's C compiler on first use (once for
 * float, once for double: `real` is set on the command line) and calls it through ctypes.
 *
 * Why C: at the CPU recipe's shapes every tensor op is small, so a cell built from a dozen PyTorch ops spends its time
 * making a dozen passes over memory and in the dispatcher. Here each function makes one pass: row by row over time,
 * with the inner loop over channels, which the compiler vectorises (exp included: exp_neg below).
 * The backward recomputes the gates from the pre-activations instead of saving them, so the cell keeps only its
 * input and its output for the backward.
 *
 * The equations are fused.py's (its docstring derives the gradients): for a gate u and a candidate p,
 *   h_t = (1 - u_t) h_{t-1} + u_t g(p_t),  g(p) = p + 1/2 for p >= 0, sigmoid(p) below (Appendix B)
 *   minGRU:  u = sigmoid(k)                                        kh = [k, p]     (B, T, 2H)
 *   minLSTM: u = i' = sigmoid(log sigmoid(i) - log sigmoid(f))      kh = [f, i, p]  (B, T, 3H)
 * All arrays are contiguous, row-major, of the shapes given beside each function. The channel loops carry
 * `#pragma GCC ivdep`: their rows never overlap, and without it the compiler gives up on proving so.
 */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#ifndef real
#define real float
#endif

/* Spread the loop over batch rows on OpenMP's threads (PyTorch's own, when both use the same libgomp) once the work
 * pays for starting them; without -fopenmp the pragmas are ignored and everything runs on one thread. */
#define MIN_PARALLEL 32768

/* exp(x) for x <= 0 (every exp here is of -|.|). In float: 2^n e^r with r = x - n ln 2 in [-ln 2 / 2, ln 2 / 2] and e^r
 * by its Taylor series to r^7 (within 4 ulp), inlined, so the compiler vectorises it with the loop around it (glibc's
 * vector expf, under -ffast-math only, is a call per 8 lanes and twice as slow here). Below -87, where float leaves its normal range, it
 * returns exp(-87) ~ 1.6e-38: no result below moves by more than that. In double: exp. */
static inline real exp_neg(real x) {
    if (sizeof(real) != sizeof(float))
        return exp(x);
    float y = x < -87 ? -87 : x;
    float n = floorf(y * 1.44269504088896341f + 0.5f);                   /* round(y / ln 2) */
    float r = (y - n * 0.693145751953125f) - n * 1.428606820309417e-6f;  /* ln 2 in two parts, n * the first exact */
    float p = 1 + r * (1 + r * (1.f / 2 + r * (1.f / 6 + r * (1.f / 24 + r * (1.f / 120 + r * (1.f / 720 + r / 5040))))));
    union { int i; float f; } two_n = {.i = ((int)n + 127) << 23};
    return p * two_n.f;
}

/* sigmoid(x) from e = exp(-|x|) in (0, 1]: never overflows */
static inline real sigmoid_e(real x, real e) { return x >= 0 ? 1 / (1 + e) : e / (1 + e); }
static inline real sigmoid(real x) { return sigmoid_e(x, exp_neg(-fabs(x))); }

/* The gate u of channel c from one row x of kh; parts (2: minGRU, 3: minLSTM) is a constant once inlined.
 * minLSTM's i' = s_i / (s_i + s_f) with s = sigmoid (= sigmoid(log s_i - log s_f)), without 0 / 0 where both
 * sigmoids underflow: s_x = exp(min(x, 0)) / (1 + e_x) with e_x = exp(-|x|), so for d = min(i, 0) - min(f, 0) >= 0,
 * i' = (1 + e_f) / ((1 + e_f) + exp(-d) (1 + e_i)), and for d < 0 the same times exp(d) above and below.
 * e_f and e_i are returned for the backward. */
static inline __attribute__((always_inline)) real gate(const real *restrict x, long c, long H, int parts, real *ef,
                                                       real *ei) {
    if (parts == 2)
        return sigmoid(x[c]);
    real f = x[c], i = x[H + c];
    *ef = exp_neg(-fabs(f));
    *ei = exp_neg(-fabs(i));
    real d = (i < 0 ? i : 0) - (f < 0 ? f : 0), e = exp_neg(-fabs(d)), af = 1 + *ef, ai = 1 + *ei;
    return d >= 0 ? af / (af + e * ai) : e * af / (e * af + ai);
}

/* One batch row of the forward: h_t = h_{t-1} + u_t (g(p_t) - h_{t-1}), from prev0 = h0 or zeros. */
static inline __attribute__((always_inline)) void row_forward(const real *restrict kh, const real *restrict prev0,
                                                              real *restrict h, long T, long H, int parts) {
    for (long t = 0; t < T; t++) {
        const real *restrict x = kh + t * parts * H, *restrict p = x + (parts - 1) * H;
        const real *restrict prev = t ? h + (t - 1) * H : prev0;
        real *restrict out = h + t * H;
        #pragma GCC ivdep
        for (long c = 0; c < H; c++) {
            real ef = 0, ei = 0, u = gate(x, c, H, parts, &ef, &ei), s = sigmoid(p[c]);
            real gp = p[c] >= 0 ? p[c] + (real)0.5 : s;  /* g(p) */
            out[c] = prev[c] + u * (gp - prev[c]);
        }
    }
}

/* One batch row of the backward, in reverse time: gh_t = dL/dh_t = grad_h_t + a_{t+1} gh_{t+1} (all that h_t feeds in
 * the future), then dL/du_t = gh_t (g(p_t) - h_{t-1}) and dL/dp_t = gh_t u_t g'(p_t); gh and a_next are H each. */
static inline __attribute__((always_inline)) void row_backward(const real *restrict kh, const real *restrict prev0,
                                                               const real *restrict h, const real *restrict grad_h,
                                                               real *restrict dkh, real *restrict dh0,
                                                               real *restrict gh, real *restrict a_next, long T,
                                                               long H, int parts) {
    memset(gh, 0, H * sizeof(real));  /* past the end: no gradient, and a = 0 */
    memset(a_next, 0, H * sizeof(real));
    for (long t = T - 1; t >= 0; t--) {
        const real *restrict x = kh + t * parts * H, *restrict p = x + (parts - 1) * H;
        const real *restrict prev = t ? h + (t - 1) * H : prev0, *restrict grad = grad_h + t * H;
        real *restrict dx = dkh + t * parts * H, *restrict dp = dx + (parts - 1) * H;
        #pragma GCC ivdep
        for (long c = 0; c < H; c++) {
            real ef = 0, ei = 0, u = gate(x, c, H, parts, &ef, &ei), s = sigmoid(p[c]), pc = p[c];
            real gp = pc >= 0 ? pc + (real)0.5 : s, dg = pc >= 0 ? 1 : s * (1 - s);  /* g(p), g'(p) */
            real gt = grad[c] + a_next[c] * gh[c];
            real du = gt * (gp - prev[c]) * u * (1 - u);  /* dL/d(the gate's pre-activation), for minGRU */
            if (parts == 2) {
                dx[c] = du;
            } else {  /* dd/di = sigmoid(-i), dd/df = -sigmoid(-f) */
                dx[c] = -du * sigmoid_e(-x[c], ef);
                dx[H + c] = du * sigmoid_e(-x[H + c], ei);
            }
            dp[c] = gt * u * dg;
            gh[c] = gt;
            a_next[c] = 1 - u;
        }
    }
    if (dh0)  /* dL/dh0 = gh_0 a_0 */
        #pragma GCC ivdep
        for (long c = 0; c < H; c++)
            dh0[c] = gh[c] * a_next[c];
}

static inline __attribute__((always_inline)) void cell_forward(const real *kh, const real *h0, real *h, long B,
                                                               long T, long H, int parts) {
    real *zeros = calloc(H, sizeof(real));
    #pragma omp parallel for if (B * T * H >= MIN_PARALLEL)
    for (long b = 0; b < B; b++)
        row_forward(kh + b * T * parts * H, h0 ? h0 + b * H : zeros, h + b * T * H, T, H, parts);
    free(zeros);
}

/* dh0 (B, H) may be NULL */
static inline __attribute__((always_inline)) void cell_backward(const real *kh, const real *h0, const real *h,
                                                                const real *grad_h, real *dkh, real *dh0, long B,
                                                                long T, long H, int parts) {
    real *zeros = calloc(H, sizeof(real));
    #pragma omp parallel for if (B * T * H >= MIN_PARALLEL)
    for (long b = 0; b < B; b++) {
        real *gh = malloc(2 * H * sizeof(real));
        row_backward(kh + b * T * parts * H, h0 ? h0 + b * H : zeros, h + b * T * H, grad_h + b * T * H,
                     dkh + b * T * parts * H, dh0 ? dh0 + b * H : NULL, gh, gh + H, T, H, parts);
        free(gh);
    }
    free(zeros);
}

/* kh (B, T, 2H), h0 (B, H) or NULL -> h (B, T, H) */
void mingru_forward(const real *kh, const real *h0, real *h, long B, long T, long H) {
    cell_forward(kh, h0, h, B, T, H, 2);
}

/* -> dkh (B, T, 2H), dh0 (B, H) or NULL */
void mingru_backward(const real *kh, const real *h0, const real *h, const real *grad_h, real *dkh, real *dh0, long B,
                     long T, long H) {
    cell_backward(kh, h0, h, grad_h, dkh, dh0, B, T, H, 2);
}

/* kh (B, T, 3H), h0 (B, H) or NULL -> h (B, T, H) */
void minlstm_forward(const real *kh, const real *h0, real *h, long B, long T, long H) {
    cell_forward(kh, h0, h, B, T, H, 3);
}

void minlstm_backward(const real *kh, const real *h0, const real *h, const real *grad_h, real *dkh, real *dh0, long B,
                      long T, long H) {
    cell_backward(kh, h0, h, grad_h, dkh, dh0, B, T, H, 3);
}

/* The causal depthwise conv: y_t = bias + sum_j w_j * xp_{t+j}, with xp (B, T + K - 1, C) the input after the K - 1
 * inputs before it (zeros at a sequence's start, or the carried tail), w (K, C), bias (C) or NULL -> y (B, T, C) */
void conv_forward(const real *xp, const real *w, const real *bias, real *y, long B, long T, long C, long K) {
    #pragma omp parallel for if (B * T * C * K >= MIN_PARALLEL)
    for (long b = 0; b < B; b++) {
        for (long t = 0; t < T; t++) {
            real *restrict out = y + (b * T + t) * C;
            #pragma GCC ivdep
            for (long c = 0; c < C; c++)
                out[c] = bias ? bias[c] : 0;
            for (long j = 0; j < K; j++) {
                const real *restrict x = xp + (b * (T + K - 1) + t + j) * C, *restrict wj = w + j * C;
                #pragma GCC ivdep
                for (long c = 0; c < C; c++)
                    out[c] += wj[c] * x[c];
            }
        }
    }
}

/* -> dxp (B, T + K - 1, C), dw (K, C), dbias (C) or NULL: dxp_s = sum_j w_j dy_{s-j} over 0 <= s - j < T, and
 * dw_j = sum over b, t of dy_t xp_{t+j} */
void conv_backward(const real *xp, const real *w, const real *dy, real *dxp, real *dw, real *dbias, long B, long T,
                   long C, long K) {
    memset(dw, 0, K * C * sizeof(real));
    if (dbias)
        memset(dbias, 0, C * sizeof(real));
    #pragma omp parallel if (B * T * C * K >= MIN_PARALLEL)
    {
        real *sums = calloc((K + 1) * C, sizeof(real));  /* this thread's dw and dbias, added up at the end */
        #pragma omp for
        for (long b = 0; b < B; b++) {
            for (long s = 0; s < T + K - 1; s++) {
                const real *restrict x = xp + (b * (T + K - 1) + s) * C;
                real *restrict out = dxp + (b * (T + K - 1) + s) * C;
                memset(out, 0, C * sizeof(real));
                for (long j = 0; j < K; j++) {
                    long t = s - j;  /* the output that xp_s reaches through w_j */
                    if (t < 0 || t >= T)
                        continue;
                    const real *restrict dyt = dy + (b * T + t) * C, *restrict wj = w + j * C;
                    real *restrict dwj = sums + j * C;
                    #pragma GCC ivdep
                    for (long c = 0; c < C; c++) {
                        out[c] += wj[c] * dyt[c];
                        dwj[c] += dyt[c] * x[c];
                    }
                }
            }
            for (long t = 0; t < T; t++) {
                const real *restrict dyt = dy + (b * T + t) * C;
                real *restrict db = sums + K * C;
                #pragma GCC ivdep
                for (long c = 0; c < C; c++)
                    db[c] += dyt[c];
            }
        }
        #pragma omp critical
        {
            for (long c = 0; c < K * C; c++)
                dw[c] += sums[c];
            if (dbias)
                for (long c = 0; c < C; c++)
                    dbias[c] += sums[K * C + c];
        }
        free(sums);
    }
}
