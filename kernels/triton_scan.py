"""
The scan as two Triton kernels: scan.py's "triton" backend, used on CUDA when Triton is installed.

Each program owns BLOCK_D channels of one sequence and walks the T steps in order, h = exp(log_a) * h + exp(log_b),
keeping h in registers: the inputs are read once and h written once, with none of the intermediate tensors that
the log-space scans build. Backward walks the steps in reverse with the same recurrence for the gradient,
g_t = dL/dh_t + a_{t+1} * g_{t+1}, and from it d log_b_t = g_t * b_t and d log_a_t = g_t * a_t * h_{t-1}.
Computes in the inputs' dtype (float32, or float64 for the tests), in linear space like the "chunked" backend.
With LOG=False the same kernels take a and b themselves (scan.py's scan_linear, b of any sign, as Mamba needs):
the exp is skipped, and the gradients are d b_t = g_t and d a_t = g_t * h_{t-1}.

Without a GPU the kernels still run under Triton's interpreter (TRITON_INTERPRET=1, set before this module is
imported), which is how the CPU test suite checks them against the float64 loop.
"""
import torch
import triton
import triton.language as tl


@triton.jit
def _channels(h0, h, D, HAS_H0: tl.constexpr, BLOCK_D: tl.constexpr):
    """This program's sequence, its BLOCK_D channels d (masked past D) and their state before step 0."""
    seq = tl.program_id(0)
    d = tl.program_id(1) * BLOCK_D + tl.arange(0, BLOCK_D)
    mask = d < D
    if HAS_H0:
        start = tl.load(h0 + seq * D + d, mask=mask, other=0.0)
    else:
        start = tl.zeros([BLOCK_D], dtype=h.dtype.element_ty)
    return seq, d, mask, start


@triton.jit
def _gates(log_a, log_b, offset, mask, LOG: tl.constexpr):
    """a_t and b_t at offset: exp of the inputs (LOG) or the inputs as they are."""
    a = tl.load(log_a + offset, mask=mask, other=0.0)
    b = tl.load(log_b + offset, mask=mask, other=0.0)
    if LOG:
        a, b = tl.exp(a), tl.exp(b)
    return a, b


@triton.jit
def _forward(log_a, log_b, h0, h, T, D, HAS_H0: tl.constexpr, LOG: tl.constexpr, BLOCK_D: tl.constexpr):
    seq, d, mask, state = _channels(h0, h, D, HAS_H0, BLOCK_D)
    offset = seq * T * D + d
    for _ in range(T):
        a, b = _gates(log_a, log_b, offset, mask, LOG)
        state = a * state + b
        tl.store(h + offset, state, mask=mask)
        offset += D


@triton.jit
def _backward(log_a, log_b, h0, h, grad_h, grad_log_a, grad_log_b, grad_h0, T, D, HAS_H0: tl.constexpr,
              LOG: tl.constexpr, BLOCK_D: tl.constexpr):
    seq, d, mask, first = _channels(h0, h, D, HAS_H0, BLOCK_D)
    g = tl.zeros([BLOCK_D], dtype=h.dtype.element_ty)
    a_next = tl.zeros([BLOCK_D], dtype=h.dtype.element_ty)  # a_{t+1}; nothing follows the last step
    offset = seq * T * D + (T - 1) * D + d
    for _ in range(T):
        g = tl.load(grad_h + offset, mask=mask, other=0.0) + a_next * g
        a, b = _gates(log_a, log_b, offset, mask, LOG)
        has_prev = offset >= seq * T * D + D  # t >= 1 (0 <= d < D in every lane that counts)
        h_prev = tl.where(has_prev, tl.load(h + offset - D, mask=mask & has_prev, other=0.0), first)
        if LOG:  # through the exp: d log_b = g * b, d log_a = g * a * h_{t-1}
            tl.store(grad_log_b + offset, g * b, mask=mask)
            tl.store(grad_log_a + offset, g * a * h_prev, mask=mask)
        else:
            tl.store(grad_log_b + offset, g, mask=mask)
            tl.store(grad_log_a + offset, g * h_prev, mask=mask)
        a_next = a
        offset -= D
    if HAS_H0:
        tl.store(grad_h0 + seq * D + d, a_next * g, mask=mask)


def _grid(log_a, block_d):
    return (log_a.size(0), triton.cdiv(log_a.size(2), block_d))


BLOCK_D = 64


class TritonScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, log_a, log_b, h0, log=True):
        log_a, log_b = log_a.contiguous(), log_b.contiguous()
        h = torch.empty_like(log_a)
        B, T, D = log_a.shape
        start = h0.contiguous() if h0 is not None else h  # any pointer when there is no h0; never read
        _forward[_grid(log_a, BLOCK_D)](log_a, log_b, start, h, T, D, HAS_H0=h0 is not None, LOG=log,
                                         BLOCK_D=BLOCK_D)
        ctx.save_for_backward(log_a, log_b, h0, h)
        ctx.log = log
        return h

    @staticmethod
    def backward(ctx, grad_h):
        log_a, log_b, h0, h = ctx.saved_tensors
        grad_log_a, grad_log_b = torch.empty_like(log_a), torch.empty_like(log_b)
        grad_h0 = torch.empty_like(h0) if h0 is not None else None
        B, T, D = log_a.shape
        start = h0.contiguous() if h0 is not None else h
        _backward[_grid(log_a, BLOCK_D)](log_a, log_b, start, h, grad_h.contiguous(), grad_log_a, grad_log_b,
                                         grad_h0 if h0 is not None else h, T, D, HAS_H0=h0 is not None,
                                         LOG=ctx.log, BLOCK_D=BLOCK_D)
        return grad_log_a, grad_log_b, grad_h0, None


def scan_triton(log_a, log_b, h0=None):
    return TritonScan.apply(log_a, log_b, h0)


def scan_triton_linear(a, b, h0=None):
    return TritonScan.apply(a, b, h0, False)
