/*
 * The CPU's kernels, forward and backward, as plain C loops: minGRU's and minLSTM's cells and the causal depthwise
 * conv (cells.py), and the linear scan h_t = a_t h_{t-1} + b_t (scan.py's "c" backend, Mamba's on a CPU). build.py
 * compiles this file with the system's C compiler on first use (once for float, once for double: `real` is set on
 * the command line) and calls it through ctypes.
 *
 * These are accelerations of model.py, never its definition. fastpath.py runs a cell or the conv only after checking
 * on a small input that it computes what model.py's MinGRU.gates, MinLSTM.gates or CausalConv.convolve computes
 * (values and gradients); after an edit there, model.py's own code runs instead, and one warning says so. To get the
 * speed back after such an edit, make the loops below compute the new equations.
 *
 * Why C: at the CPU recipe's shapes every tensor op is small, so a cell built from a dozen PyTorch ops spends its time
 * making a dozen passes over memory and in the dispatcher. Here each function makes one pass: row by row over time,
 * with the inner loop over channels, which the compiler vectorises (exp included: exp_neg below).
 * The backward recomputes the gates from the pre-activations instead of saving them, so the cell keeps only its
 * input and its output for the backward.
 *
 * The equations, as model.py's gates write them: for a gate u and a candidate p,
 *   h_t = (1 - u_t) h_{t-1} + u_t g(p_t),  g(p) = p + 1/2 for p >= 0, sigmoid(p) below (Appendix B)
 *   minGRU:  u = sigmoid(k)                                        kh = [k, p]     (B, T, 2H)
 *   minLSTM: u = i' = sigmoid(log sigmoid(i) - log sigmoid(f))      kh = [f, i, p]  (B, T, 3H)
 * For h_t = a_t h_{t-1} + b_t the gradient gh_t = dL/dh_t runs backwards in time (the same recurrence in reverse),
 * dL/da_t = gh_t h_{t-1} and dL/db_t = gh_t, so with a = 1 - u and b = u g(p): dL/du = gh_t (g(p_t) - h_{t-1}) and
 * dL/dp = gh_t u g'(p), where g'(p) = 1 above 0 and g(p) (1 - g(p)) below.
 * All arrays are contiguous, row-major, of the shapes given beside each function. The channel loops carry
 * `#pragma GCC ivdep`: their rows never overlap, and without it the compiler gives up on proving so.
 */
#include <stdlib.h>
#include <string.h>
#include <tgmath.h>

#ifndef real
#define real float
#endif

#ifdef _OPENMP
#include <omp.h>
#else  /* built without OpenMP: one thread, and the pragmas are ignored */
static int omp_get_max_threads(void) { return 1; }
static int omp_get_thread_num(void) { return 0; }
#endif

/* Loops over batch rows are spread on OpenMP's threads (PyTorch's own, when both use the same libgomp) once the work
 * pays for starting them; every row is a thread's alone, so results do not depend on the number of threads (the
 * conv's weight gradient, a sum over rows, depends on it only through its partial sums, added in a fixed order). */
#define MIN_PARALLEL 32768

/* exp(x) for x <= 0 (every exp here is of -|.|). In float: 2^n e^r with r = x - n ln 2 in [-ln 2 / 2, ln 2 / 2] and
 * e^r by its Taylor series to r^7 (relative error below 5e-7), inlined, so that the compiler vectorises it with the
 * loop around it (glibc's vector expf needs -ffast-math, and is a call per 8 lanes). Below -87, where float leaves its
 * normal range, it returns exp(-87) ~ 1.6e-38: no result below moves by more than that. The same form is as exact
 * for 0 < x < 88 (the selective scan's exp(dt A) goes there only if an edit makes A positive); above, where float's
 * exp overflows to inf, it stays at exp(88). In double: exp. */
static inline real exp_neg(real x) {
    if (sizeof(real) != sizeof(float))
        return exp(x);
    float y = x < -87 ? -87 : x > 88 ? 88 : x;
    float n = floorf(y * 1.44269504088896341f + 0.5f);                   /* round(y / ln 2) */
    float r = (y - n * 0.693145751953125f) - n * 1.428606820309417e-6f;  /* ln 2 in two parts, n * the first exact */
    float p = 1.f / 24 + r * (1.f / 120 + r * (1.f / 720 + r / 5040));  /* e^r by Horner's rule */
    p = 1 + r * (1 + r * (1.f / 2 + r * (1.f / 6 + r * p)));
    union { int i; float f; } two_n = {.i = ((int)n + 127) << 23};
    return p * two_n.f;
}

/* What a row's channel c needs from kh's row x: the gate u, s = sigmoid(p) for the candidate's g, and for minLSTM's
 * backward sigmoid(-f) and sigmoid(-i). parts (2: minGRU, 3: minLSTM) is a constant once inlined.
 * sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e) with e = exp(-|x|) in (0, 1], which never overflows. A division is the
 * slowest instruction here, so the reciprocals of two denominators, each in [1, 4], come from one division:
 * 1 / (a b) times b is 1 / a.
 * minLSTM's i' = s_i / (s_i + s_f) (= sigmoid(log s_i - log s_f)) is formed without 0 / 0 where both sigmoids
 * underflow: s_x = exp(min(x, 0)) / (1 + e_x), so for d = min(i, 0) - min(f, 0) >= 0,
 * i' = (1 + e_f) / ((1 + e_f) + exp(-d) (1 + e_i)), and for d < 0 the same times exp(d) above and below. */
static inline __attribute__((always_inline)) void gates(const real *restrict x, long c, long H, int parts,
                                                        int backward, real *u, real *s, real *sf_neg, real *si_neg) {
    real p = x[(parts - 1) * H + c], ep = exp_neg(-fabs(p)), ap = 1 + ep;
    if (parts == 2) {
        real k = x[c], ek = exp_neg(-fabs(k)), ak = 1 + ek, r = 1 / (ak * ap);
        *u = (k >= 0 ? 1 : ek) * ap * r;
        *s = (p >= 0 ? 1 : ep) * ak * r;
        return;
    }
    real f = x[c], i = x[H + c], ef = exp_neg(-fabs(f)), ei = exp_neg(-fabs(i)), af = 1 + ef, ai = 1 + ei;
    real d = (i < 0 ? i : 0) - (f < 0 ? f : 0), e = exp_neg(-fabs(d));
    real num = d >= 0 ? af : e * af, den = num + (d >= 0 ? e * ai : ai), r = 1 / (den * ap);
    *u = num * ap * r;
    *s = (p >= 0 ? 1 : ep) * den * r;
    if (backward) {  /* sigmoid(-x) = (x >= 0 ? e : 1) / (1 + e) */
        real q = 1 / (af * ai);
        *sf_neg = (f >= 0 ? ef : 1) * ai * q;
        *si_neg = (i >= 0 ? ei : 1) * af * q;
    }
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
            real u, s, unused;
            gates(x, c, H, parts, 0, &u, &s, &unused, &unused);
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
            real u, s, sf_neg = 0, si_neg = 0, pc = p[c];
            gates(x, c, H, parts, 1, &u, &s, &sf_neg, &si_neg);
            real gp = pc >= 0 ? pc + (real)0.5 : s, dg = pc >= 0 ? 1 : s * (1 - s);  /* g(p), g'(p) */
            real gt = grad[c] + a_next[c] * gh[c];
            real du = gt * (gp - prev[c]) * u * (1 - u);  /* dL/d(the gate's pre-activation), for minGRU */
            if (parts == 2) {
                dx[c] = du;
            } else {  /* u = sigmoid(log s_i - log s_f): d/di log s_i = sigmoid(-i), d/df log s_f = sigmoid(-f) */
                dx[c] = -du * sf_neg;
                dx[H + c] = du * si_neg;
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

/* Each cell's rows, with parts a constant, so that the gate's branch on it leaves the vectorised loop */
static void mingru_row_forward(const real *kh, const real *prev0, real *h, long T, long H) {
    row_forward(kh, prev0, h, T, H, 2);
}
static void minlstm_row_forward(const real *kh, const real *prev0, real *h, long T, long H) {
    row_forward(kh, prev0, h, T, H, 3);
}
static void mingru_row_backward(const real *kh, const real *prev0, const real *h, const real *grad_h, real *dkh,
                                real *dh0, real *gh, real *a_next, long T, long H) {
    row_backward(kh, prev0, h, grad_h, dkh, dh0, gh, a_next, T, H, 2);
}
static void minlstm_row_backward(const real *kh, const real *prev0, const real *h, const real *grad_h, real *dkh,
                                 real *dh0, real *gh, real *a_next, long T, long H) {
    row_backward(kh, prev0, h, grad_h, dkh, dh0, gh, a_next, T, H, 3);
}

/* The batch rows side by side (OpenMP outlines this loop into a function of its own, with parts a variable there:
 * hence the rows' functions above) */
static void cell_forward(void (*row)(const real *, const real *, real *, long, long), const real *kh,
                         const real *h0, real *h, long B, long T, long H, int parts) {
    real *zeros = calloc(H, sizeof(real));
    #pragma omp parallel for if (B * T * H >= MIN_PARALLEL)
    for (long b = 0; b < B; b++)
        row(kh + b * T * parts * H, h0 ? h0 + b * H : zeros, h + b * T * H, T, H);
    free(zeros);
}

/* dh0 (B, H) may be NULL */
static void cell_backward(void (*row)(const real *, const real *, const real *, const real *, real *, real *, real *,
                                      real *, long, long),
                          const real *kh, const real *h0, const real *h, const real *grad_h, real *dkh, real *dh0,
                          long B, long T, long H, int parts) {
    real *zeros = calloc(H, sizeof(real));
    #pragma omp parallel for if (B * T * H >= MIN_PARALLEL)
    for (long b = 0; b < B; b++) {
        real *gh = malloc(2 * H * sizeof(real));
        row(kh + b * T * parts * H, h0 ? h0 + b * H : zeros, h + b * T * H, grad_h + b * T * H,
            dkh + b * T * parts * H, dh0 ? dh0 + b * H : NULL, gh, gh + H, T, H);
        free(gh);
    }
    free(zeros);
}

/* kh (B, T, 2H), h0 (B, H) or NULL -> h (B, T, H) */
void mingru_forward(const real *kh, const real *h0, real *h, long B, long T, long H) {
    cell_forward(mingru_row_forward, kh, h0, h, B, T, H, 2);
}

/* -> dkh (B, T, 2H), dh0 (B, H) or NULL */
void mingru_backward(const real *kh, const real *h0, const real *h, const real *grad_h, real *dkh, real *dh0, long B,
                     long T, long H) {
    cell_backward(mingru_row_backward, kh, h0, h, grad_h, dkh, dh0, B, T, H, 2);
}

/* kh (B, T, 3H), h0 (B, H) or NULL -> h (B, T, H) */
void minlstm_forward(const real *kh, const real *h0, real *h, long B, long T, long H) {
    cell_forward(minlstm_row_forward, kh, h0, h, B, T, H, 3);
}

void minlstm_backward(const real *kh, const real *h0, const real *h, const real *grad_h, real *dkh, real *dh0, long B,
                      long T, long H) {
    cell_backward(minlstm_row_backward, kh, h0, h, grad_h, dkh, dh0, B, T, H, 3);
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
    int threads = B * T * C * K >= MIN_PARALLEL ? omp_get_max_threads() : 1;
    real *sums = calloc((size_t)threads * (K + 1) * C, sizeof(real));  /* each thread's dw and dbias */
    #pragma omp parallel num_threads(threads)
    {
        real *restrict dws = sums + (size_t)omp_get_thread_num() * (K + 1) * C, *restrict dbs = dws + K * C;
        #pragma omp for schedule(static)
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
                    real *restrict dwj = dws + j * C;
                    #pragma GCC ivdep
                    for (long c = 0; c < C; c++) {
                        out[c] += wj[c] * dyt[c];
                        dwj[c] += dyt[c] * x[c];
                    }
                }
            }
            for (long t = 0; t < T; t++) {
                const real *restrict dyt = dy + (b * T + t) * C;
                #pragma GCC ivdep
                for (long c = 0; c < C; c++)
                    dbs[c] += dyt[c];
            }
        }
    }
    /* the threads' sums added in thread order: the same result on every run with the same thread count */
    for (long c = 0; c < (K + 1) * C; c++) {
        real total = 0;
        for (int i = 0; i < threads; i++)
            total += sums[(size_t)i * (K + 1) * C + c];
        if (c < K * C)
            dw[c] = total;
        else if (dbias)
            dbias[c - K * C] = total;
    }
    free(sums);
}

/* The linear scan h_t = a_t h_{t-1} + b_t over a, b (B, T, D) from h0 (B, D) or zeros -> h (B, T, D). Every channel
 * walks its T steps; the work is spread over batch rows and blocks of channels (Mamba's D is hidden * d_state). */
#define BLOCK 512

void scan_forward(const real *a, const real *b, const real *h0, real *h, long B, long T, long D) {
    long blocks = (D + BLOCK - 1) / BLOCK;
    real *zeros = calloc(D, sizeof(real));
    #pragma omp parallel for if (B * T * D >= MIN_PARALLEL)
    for (long job = 0; job < B * blocks; job++) {
        long r = job / blocks, c0 = job % blocks * BLOCK, n = D - c0 < BLOCK ? D - c0 : BLOCK;
        for (long t = 0; t < T; t++) {
            long row = (r * T + t) * D + c0;
            const real *restrict at = a + row, *restrict bt = b + row;
            const real *restrict prev = t ? h + row - D : (h0 ? h0 + r * D : zeros) + c0;
            real *restrict out = h + row;
            #pragma GCC ivdep
            for (long c = 0; c < n; c++)
                out[c] = at[c] * prev[c] + bt[c];
        }
    }
    free(zeros);
}

/* -> da, db (B, T, D) and dh0 (B, D) or NULL, in reverse time: db_t = gh_t = dL/dh_t = grad_h_t + a_{t+1} gh_{t+1},
 * da_t = gh_t h_{t-1}, dh0 = gh_0 a_0 */
void scan_backward(const real *a, const real *h0, const real *h, const real *grad_h, real *da, real *db, real *dh0,
                   long B, long T, long D) {
    long blocks = (D + BLOCK - 1) / BLOCK;
    real *zeros = calloc(D, sizeof(real));
    #pragma omp parallel for if (B * T * D >= MIN_PARALLEL)
    for (long job = 0; job < B * blocks; job++) {
        long r = job / blocks, c0 = job % blocks * BLOCK, n = D - c0 < BLOCK ? D - c0 : BLOCK;
        for (long t = T - 1; t >= 0; t--) {
            long row = (r * T + t) * D + c0;
            const real *restrict grad = grad_h + row;
            const real *restrict a_next = t + 1 < T ? a + row + D : zeros, *restrict g_next = t + 1 < T ? db + row + D
                                                                                                      : zeros;
            const real *restrict prev = t ? h + row - D : (h0 ? h0 + r * D : zeros) + c0;
            real *restrict dat = da + row, *restrict dbt = db + row;
            #pragma GCC ivdep
            for (long c = 0; c < n; c++) {
                real gt = grad[c] + a_next[c] * g_next[c];
                dbt[c] = gt;
                dat[c] = gt * prev[c];
            }
        }
        if (dh0)
            #pragma GCC ivdep
            for (long c = 0; c < n; c++)
                dh0[r * D + c0 + c] = db[r * T * D + c0 + c] * a[r * T * D + c0 + c];
    }
    free(zeros);
}

/* sigmoid(x) = (x >= 0 ? 1 : e) / (1 + e) with e = exp(-|x|) in (0, 1], which never overflows. */
static inline real sigmoid(real x) {
    real e = exp_neg(-fabs(x));
    return (x >= 0 ? 1 : e) / (1 + e);
}

/* softplus(x) = log(1 + e^x) = max(x, 0) + log1p(e) with e = exp(-|x|) in (0, 1], never overflowing; and, where
 * sig is not NULL, *sig = sigmoid(x), its derivative, from the same e. In float log1p(e) = 2 atanh(s) with
 * s = e / (2 + e) in (0, 1/3], by its odd series to s^17 (relative error below 1e-9, and exact as e -> 0, where
 * 1 + e would round to 1), inlined so that the loops over channels vectorise it as they do exp_neg. In double:
 * log1p. */
static inline real softplus(real x, real *sig) {
    real e = exp_neg(-fabs(x)), l;
    if (sig)
        *sig = (x >= 0 ? 1 : e) / (1 + e);
    if (sizeof(real) != sizeof(float)) {
        l = log1p(e);
    } else {
        real s = e / (2 + e), s2 = s * s;
        real p = 1.f / 11 + s2 * (1.f / 13 + s2 * (1.f / 15 + s2 * (1.f / 17)));
        l = 2 * s * (1 + s2 * (1.f / 3 + s2 * (1.f / 5 + s2 * (1.f / 7 + s2 * (1.f / 9 + s2 * p)))));
    }
    return (x > 0 ? x : 0) + l;
}

/* Mamba's selective scan, fused (Gu & Dao 2023, Algorithm 2; model.py's Mamba.discretize, .contract and .readout):
 *   Delta_t = softplus(dt_t),  h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] u_t[d] B_t[n],
 *   q_t[d] = sum_n C_t[n] h_t[d, n],  y_t[d] = (q_t[d] + D[d] u_t[d]) SiLU(z_t[d])
 * over dt (Delta's pre-activation), u, z (B, T, H), Bm, Cm (B, T, N), A (H, N) and D (H), from h0 (B, H, N) or
 * zeros -> y and q (B, T, H), hT (B, H, N), and ck (B, ceil(T / SCHUNK), H, N): the state before each chunk of
 * SCHUNK steps. q and ck are all the backward keeps besides the inputs (q costs one (B, T, H) tensor and saves the
 * backward a reduction over n per step, as slow here as the rest of its recompute). The composed form writes a, b
 * and h at (B, T, H, N), and Delta, q + D u and SiLU(z) at (B, T, H) for its backward; here each batch row walks
 * time with its (H, N) state in one buffer, and the backward recomputes a chunk's states from its checkpoint (the
 * official kernels' recompute, on a CPU). Per step, the per-channel work (softplus, the gate) runs in its own loop
 * over channels, vectorised. */
#define SCHUNK 16

void selective_forward(const real *dt, const real *A, const real *Bm, const real *Cm, const real *u, const real *z,
                       const real *D, const real *h0, real *y, real *qs, real *hT, real *ck, long B, long T, long H,
                       long N) {
    long chunks = (T + SCHUNK - 1) / SCHUNK, HN = H * N;
    #pragma omp parallel if (B * T * HN >= MIN_PARALLEL)
    {
        real *delta = malloc(H * sizeof(real));
        #pragma omp for
        for (long r = 0; r < B; r++) {
            real *restrict h = hT + r * HN;  /* the state, in place: it ends as h_T */
            if (h0)
                memcpy(h, h0 + r * HN, HN * sizeof(real));
            else
                memset(h, 0, HN * sizeof(real));
            for (long t = 0; t < T; t++) {
                long row = r * T + t;
                if (t % SCHUNK == 0)
                    memcpy(ck + (r * chunks + t / SCHUNK) * HN, h, HN * sizeof(real));
                const real *restrict Bt = Bm + row * N, *restrict Ct = Cm + row * N, *restrict ut = u + row * H;
                const real *restrict zt = z + row * H;
                real *restrict yt = y + row * H, *restrict qt = qs + row * H;
                #pragma GCC ivdep
                for (long d = 0; d < H; d++)
                    delta[d] = softplus(dt[row * H + d], NULL);
                for (long d = 0; d < H; d++) {
                    real x = delta[d] * ut[d], acc = 0;
                    real *restrict hd = h + d * N;
                    const real *restrict Ad = A + d * N;
                    #pragma omp simd reduction(+:acc)
                    for (long n = 0; n < N; n++) {
                        hd[n] = exp_neg(delta[d] * Ad[n]) * hd[n] + x * Bt[n];
                        acc += Ct[n] * hd[n];
                    }
                    qt[d] = acc;
                }
                #pragma GCC ivdep
                for (long d = 0; d < H; d++)  /* (C . h + D u) SiLU(z), SiLU(z) = z sigmoid(z) */
                    yt[d] = (qt[d] + D[d] * ut[d]) * zt[d] * sigmoid(zt[d]);
            }
        }
        free(delta);
    }
}

/* -> ddt, du, dz (B, T, H), dB, dC (B, T, N), dA (B, H, N) and dD (B, H) (each batch row's share of A's and D's
 * gradients; the caller sums them) and dh0 (B, H, N) or NULL, from dy (B, T, H) and dhT (B, H, N) or NULL. Chunk by
 * chunk from the last: its Deltas and states recomputed from ck (SCHUNK + 1 states in hs, each step's a in as), then
 * its steps in reverse with gh = dL/dh_t, starting from dhT. At step t, with s = sigmoid(z) and the forward's q: the
 * gate gives g = dy SiLU(z) = dL/dq, dz = dy (q + D u) s (1 + z (1 - s)), dD += g u and g D to du. Then gh += g C_t
 * (q reads h_t); dC_t[n] += g h_t[d, n]; with a = exp(Delta A), da = gh h_{t-1} and db = gh, so dL/dDelta =
 * sum_n (da a A + db u B) and ddt = that times sigmoid(dt) (softplus'), du += Delta sum_n db B, dB_t[n] += db Delta u
 * and dA += da a Delta; then gh = gh a, the gradient of h_{t-1}. qs (B, T, H) is the forward's q. */
void selective_backward(const real *dt, const real *A, const real *Bm, const real *Cm, const real *u, const real *z,
                        const real *D, const real *qs, const real *ck, const real *dy, const real *dhT, real *ddt,
                        real *dA, real *dB, real *dC, real *du, real *dz, real *dD, real *dh0, long B, long T, long H,
                        long N) {
    long chunks = (T + SCHUNK - 1) / SCHUNK, HN = H * N;
    #pragma omp parallel if (B * T * HN >= MIN_PARALLEL)
    {
        real *hs = malloc((SCHUNK + 1) * HN * sizeof(real)), *as = malloc(SCHUNK * HN * sizeof(real));
        real *gh = malloc(HN * sizeof(real)), *delta = malloc((2 * SCHUNK + 2) * H * sizeof(real));
        real *sig = delta + SCHUNK * H, *g = sig + SCHUNK * H, *dgate = g + H;
        #pragma omp for
        for (long r = 0; r < B; r++) {
            real *restrict dAr = dA + r * HN, *restrict dDr = dD + r * H;
            memset(dAr, 0, HN * sizeof(real));
            memset(dDr, 0, H * sizeof(real));
            memset(dB + r * T * N, 0, T * N * sizeof(real));
            memset(dC + r * T * N, 0, T * N * sizeof(real));
            if (dhT)
                memcpy(gh, dhT + r * HN, HN * sizeof(real));
            else
                memset(gh, 0, HN * sizeof(real));
            for (long c = chunks - 1; c >= 0; c--) {
                long t0 = c * SCHUNK, len = T - t0 < SCHUNK ? T - t0 : SCHUNK;
                memcpy(hs, ck + (r * chunks + c) * HN, HN * sizeof(real));
                for (long k = 0; k < len; k++) {  /* hs[k + 1] = h_{t0 + k} */
                    long row = r * T + t0 + k;
                    const real *restrict Bt = Bm + row * N, *restrict ut = u + row * H;
                    real *restrict dk = delta + k * H, *restrict sk = sig + k * H;
                    #pragma GCC ivdep
                    for (long d = 0; d < H; d++)
                        dk[d] = softplus(dt[row * H + d], sk + d);
                    for (long d = 0; d < H; d++) {
                        real x = dk[d] * ut[d];
                        const real *restrict prev = hs + k * HN + d * N, *restrict Ad = A + d * N;
                        real *restrict next = hs + (k + 1) * HN + d * N, *restrict ak = as + k * HN + d * N;
                        #pragma GCC ivdep
                        for (long n = 0; n < N; n++) {
                            ak[n] = exp_neg(dk[d] * Ad[n]);
                            next[n] = ak[n] * prev[n] + x * Bt[n];
                        }
                    }
                }
                for (long k = len - 1; k >= 0; k--) {
                    long row = r * T + t0 + k;
                    const real *restrict Bt = Bm + row * N, *restrict Ct = Cm + row * N;
                    const real *restrict ut = u + row * H, *restrict zt = z + row * H, *restrict dyt = dy + row * H;
                    const real *restrict dk = delta + k * H, *restrict sk = sig + k * H;
                    real *restrict dBt = dB + row * N, *restrict dCt = dC + row * N;
                    #pragma GCC ivdep
                    for (long d = 0; d < H; d++) {  /* the gate's share: g = dL/dq, and dz but for q */
                        real sz = sigmoid(zt[d]);
                        g[d] = dyt[d] * zt[d] * sz;
                        dgate[d] = dyt[d] * sz * (1 + zt[d] * (1 - sz));
                    }
                    for (long d = 0; d < H; d++) {
                        real gd = g[d], ud = ut[d], sdt = 0, sdu = 0;
                        const real *restrict prev = hs + k * HN + d * N, *restrict cur = prev + HN;
                        const real *restrict Ad = A + d * N, *restrict ak = as + k * HN + d * N;
                        real *restrict ghd = gh + d * N, *restrict dAd = dAr + d * N;
                        #pragma omp simd reduction(+:sdt, sdu)
                        for (long n = 0; n < N; n++) {
                            real a = ak[n], ghn = ghd[n] + gd * Ct[n], da = ghn * prev[n];
                            dCt[n] += gd * cur[n];
                            sdt += da * a * Ad[n] + ghn * ud * Bt[n];
                            sdu += ghn * Bt[n];
                            dBt[n] += ghn * dk[d] * ud;
                            dAd[n] += da * a * dk[d];
                            ghd[n] = ghn * a;
                        }
                        ddt[row * H + d] = sdt * sk[d];
                        du[row * H + d] = sdu * dk[d] + gd * D[d];
                        dDr[d] += gd * ud;
                    }
                    #pragma GCC ivdep
                    for (long d = 0; d < H; d++)
                        dz[row * H + d] = dgate[d] * (qs[row * H + d] + D[d] * ut[d]);
                }
            }
            if (dh0)
                memcpy(dh0 + r * HN, gh, HN * sizeof(real));
        }
        free(hs);
        free(as);
        free(gh);
        free(delta);
    }
}
