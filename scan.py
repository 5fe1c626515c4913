"""
The linear recurrence h_t = a_t * h_{t-1} + b_t over a whole sequence at once.

minGRU, minLSTM and Mamba compute their gates from the input alone, so a_t and b_t are known for every t before the
recurrence runs and h can be computed in parallel over time. The models give a and b in linear space, to
scan_linear (below). scan() takes them in log space, log_a and log_b of shape (B, T, D), as the paper's Appendix B
writes minGRU and minLSTM (Heinsen's form, for a model whose b > 0 is easier to write as a logarithm); h0 is a
(B, D) state in linear space, >= 0, or None for zeros. Every backend returns h (B, T, D):

- reference:   a plain loop in float64. Slow; the ground truth the tests compare everything with.
- log:         Heinsen's log-space scan (arXiv 2311.06281): one cumsum and one logcumsumexp. Short and parallel,
               but it subtracts the running sum of log_a, a large number at long T, so float32 accuracy decays with
               length; and PyTorch's logcumsumexp is slow on CPU, its backward above all. The default on CUDA
               without Triton up to T = 512, where its few kernels beat chunked_log's many (bench_out/gpu_scan.json).
- chunked_log: the same log-space scan inside chunks of 16 steps, all chunks at once, then the chunks' end states
               joined by a second log-space scan in float64 over T/16 summaries. All big parallel ops, which is
               what a GPU favours, and accurate at any length. The default on CUDA from T > 2048, or
               without Triton from T > 512.
- chunked:     linear space with its own backward. Chunks of ~sqrt(T) steps are scanned side by side, then the
               state is carried across chunks: about 2*sqrt(T) small sequential steps instead of T. The gradient is
               the same recurrence run in reverse, so backward costs one more such scan. The default on CPU.
- triton:      one Triton kernel each way (kernels/triton_scan.py): every channel walks its T steps in registers, the
               inputs read once, nothing else built. Linear space, like chunked. Parallel over batch and channels
               only, so it is the default on CUDA up to T = 2048 when Triton is installed (it comes with CUDA builds
               of PyTorch), chunked_log beyond (bench_out/gpu_scan.json).
- c:           the same on a CPU: one C loop each way (kernels/cpu.c), every channel walking its T steps, vectorised
               over channels and spread over batch rows and channel blocks. The default on CPU when cpu.c
               builds (kernels/build.py; C_KERNELS=0 turns it off), else chunked.

scan_linear(a, b, h0) is the same recurrence with a >= 0 and b, h0 of any sign given in linear space (Mamba's b
is signed, so it has no logarithm). The backends that work in linear space serve it: reference, chunked (the
default where kernels/cpu.c does not build), c (the CPU's default) and triton (on CUDA up to T = 2048). log and
chunked_log take logarithms and cannot.

Every backend computes in float32 (float64 inputs stay float64), with autocast off, so bf16/fp16 training never
runs the recurrence in low precision. The linear-space backends exponentiate log_b: an h that overflows float32
there overflows the true result as well.
"""
import os

import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

from kernels import build
from kernels.build import ptr

try:
    from kernels.triton_scan import scan_triton, scan_triton_linear
except ImportError:  # Triton is optional; CUDA builds of PyTorch install it
    scan_triton = scan_triton_linear = None

BACKENDS = ("reference", "log", "chunked_log", "chunked", "triton", "c")
LINEAR_BACKENDS = ("reference", "chunked", "triton", "c")  # those that serve scan_linear
# the backend scan() uses when none is given: None picks by device (see above); SCAN_BACKEND=log python train.py ...
# sets it for a run
DEFAULT_BACKEND = os.environ.get("SCAN_BACKEND") or None
# on CUDA, the longest T the default runs with "triton" (its parallelism is batch x channels only, so chunked_log,
# parallel over time as well, wins beyond) and, without Triton, with "log" (see the list above)
TRITON_MAX_T, LOG_MAX_T = 2048, 512


def scan_linear_reference(a, b, h0=None):
    """The recurrence as written, one step at a time, in float64."""
    a, b = a.double(), b.double()
    h = a.new_zeros(a.size(0), a.size(2)) if h0 is None else h0.double()
    out = []
    for t in range(a.size(1)):
        h = a[:, t] * h + b[:, t]
        out.append(h)
    return torch.stack(out, dim=1)


def scan_reference(log_a, log_b, h0=None):
    return scan_linear_reference(log_a.double().exp(), log_b.double().exp(), h0)


def scan_log(log_a, log_b, h0=None):
    """Heinsen's scan: log h_t = a*_t + logcumsumexp(log_b - a*)_t, with a*_t = sum_{s<=t} log_a_s."""
    a_star = torch.cumsum(log_a, dim=1)  # (B, T, D)
    h = torch.exp(a_star + torch.logcumsumexp(log_b - a_star, dim=1))
    if h0 is not None:
        # h0's contribution is linear in h0; adding it in linear space avoids log(0) and its NaN gradient
        h = h + torch.exp(a_star) * h0.unsqueeze(1)
    return h


def scan_chunked_log(log_a, log_b, h0=None, chunk=16):
    """Log-space scan within chunks (float32, error bounded by the chunk length), joined in float64."""
    B, T, D = log_a.shape
    n = -(-T // chunk)
    pad = n * chunk - T  # padding goes at the end, where no earlier position can see it
    la = F.pad(log_a, (0, 0, 0, pad)).view(B, n, chunk, D)
    lb = F.pad(log_b, (0, 0, 0, pad)).view(B, n, chunk, D)
    a_star = torch.cumsum(la, dim=2)  # (B, n, chunk, D), from each chunk's start
    log_h = a_star + torch.logcumsumexp(lb - a_star, dim=2)  # every chunk from a zero state
    # the state at the end of chunk j: H_j = exp(S_j) * H_{j-1} + h_local_end_j, a scan over n summaries
    S, log_end = a_star[:, :, -1].double(), log_h[:, :, -1].double()  # (B, n, D)
    S_star = torch.cumsum(S, dim=1)
    H = torch.exp(S_star + torch.logcumsumexp(log_end - S_star, dim=1))
    if h0 is not None:
        H = H + torch.exp(S_star) * h0.double().unsqueeze(1)
    carry = torch.cat([H.new_zeros(B, 1, D) if h0 is None else h0.double().unsqueeze(1), H[:, :-1]], dim=1)
    h = torch.exp(log_h) + torch.exp(a_star) * carry.to(log_h.dtype).unsqueeze(2)
    return h.reshape(B, n * chunk, D)[:, :T]


def _linear_scan(a, b, h0=None, reverse=False, consume_a=False, consume_b=False):
    """h_t = a_t * h_{t-1} + b_t in linear space with ~2*sqrt(T) sequential steps. No autograd.
    reverse=True runs time backwards from a zero state: h_t = a_t * h_{t+1} + b_t (used by the backward pass).
    consume_a=True (consume_b=True) lets the scan overwrite a (b), saving a copy of a large tensor."""
    B, T, D = a.shape
    C = max(1, int(T ** 0.5))  # chunk length
    n = -(-T // C)
    pad = n * C - T  # padding goes at the end; forwards nothing sees it, backwards it holds a zero state
    if pad:
        a, b = F.pad(a, (0, 0, 0, pad), value=1.0), F.pad(b, (0, 0, 0, pad))
    a = a.reshape(B, n, C, D)
    h = b.reshape(B, n, C, D)  # (B, n, C, D)
    h = h if consume_b or pad else h.clone()  # padding made a copy already
    # A: how much of a chunk's incoming state survives to each step (products of a; underflow to 0 is fine)
    A = a if consume_a or pad else a.clone()
    steps = range(C - 2, -1, -1) if reverse else range(1, C)
    for c in steps:  # 1. all chunks side by side, each from a zero state
        prev = c + 1 if reverse else c - 1
        h[:, :, c].addcmul_(a[:, :, c], h[:, :, prev])  # reads a[c] before A[c] (maybe the same memory) changes
        A[:, :, c].mul_(A[:, :, prev])
    carry = torch.empty_like(h[:, :, 0])  # (B, n, D): the state entering each chunk
    s = torch.zeros_like(carry[:, 0]) if h0 is None else h0
    last = 0 if reverse else C - 1  # the chunk's final step, in the direction of travel
    for j in (range(n - 1, -1, -1) if reverse else range(n)):  # 2. carry the state across chunks
        carry[:, j] = s
        s = torch.addcmul(h[:, j, last], A[:, j, last], s)
    h.addcmul_(A, carry.unsqueeze(2))  # 3. add each chunk's incoming state
    return h.view(B, n * C, D)[:, :T]


class _LinearScan(torch.autograd.Function):
    @staticmethod
    def forward(ctx, a, b, h0):
        h = _linear_scan(a, b, h0)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @once_differentiable  # its backward works in place, so it cannot be differentiated again: say so clearly
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        # dL/dh_t collects the future: g_t = grad_t + a_{t+1} * g_{t+1}, the same recurrence run backwards in time
        a_next = torch.cat([a[:, 1:], torch.zeros_like(a[:, :1])], dim=1)
        g = _linear_scan(a_next, grad_h, reverse=True, consume_a=True)
        grad_h0 = g[:, 0] * a[:, 0] if h0 is not None and ctx.needs_input_grad[2] else None
        h_prev = torch.cat([torch.zeros_like(h[:, :1]) if h0 is None else h0.unsqueeze(1), h[:, :-1]], dim=1)
        return h_prev.mul_(g), g, grad_h0  # d/da = g * h_{t-1} (in place: these tensors are large), d/db = g


def scan_chunked(log_a, log_b, h0=None):
    return _LinearScan.apply(log_a.exp(), log_b.exp(), h0)


class _LinearScanC(torch.autograd.Function):
    """The c backend: kernels/cpu.c's scan_forward and scan_backward, the same recurrences as _LinearScan's."""

    @staticmethod
    def forward(ctx, a, b, h0):
        a, b, h0 = a.contiguous(), b.contiguous(), None if h0 is None else h0.contiguous()
        h = torch.empty_like(a)
        build.library(a.dtype).scan_forward(ptr(a), ptr(b), ptr(h0), ptr(h), *a.shape)
        ctx.save_for_backward(a, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        a, h, h0 = ctx.saved_tensors
        grad_h = grad_h.to(h.dtype).contiguous()  # held in a name while C reads it
        da, db = torch.empty_like(a), torch.empty_like(a)
        dh0 = torch.empty_like(h0) if h0 is not None and ctx.needs_input_grad[2] else None
        build.library(a.dtype).scan_backward(ptr(a), ptr(h0), ptr(h), ptr(grad_h), ptr(da), ptr(db), ptr(dh0),
                                               *a.shape)
        return da, db, dh0


def scan_c(log_a, log_b, h0=None):
    return _LinearScanC.apply(log_a.exp(), log_b.exp(), h0)


def _checked_inputs(fn, names, x, y, h0):
    """x, y (B, T, D) and h0 (B, D) or None, shapes checked, in float32 (float64 when x or y is float64)."""
    if x.dim() != 3 or x.shape != y.shape:
        raise ValueError(f"{fn} needs {names[0]} and {names[1]} of the same shape (B, T, D); got {tuple(x.shape)} "
                         f"and {tuple(y.shape)}")
    if h0 is not None and h0.shape != (x.size(0), x.size(2)):
        raise ValueError(f"h0 must have shape (B, D) = {(x.size(0), x.size(2))}; got {tuple(h0.shape)}")
    dtype = torch.float64 if torch.float64 in (x.dtype, y.dtype) else torch.float32
    return x.to(dtype), y.to(dtype), None if h0 is None else h0.to(dtype)


_IMPLS = {"reference": scan_reference, "log": scan_log, "chunked_log": scan_chunked_log, "chunked": scan_chunked,
          "triton": scan_triton, "c": scan_c}
_LINEAR_IMPLS = {"reference": scan_linear_reference, "chunked": _LinearScan.apply, "triton": scan_triton_linear,
                 "c": _LinearScanC.apply}


def c_usable(device_type):
    """Whether the c backend can run on this device: a CPU, kernels/cpu.c built, C_KERNELS unset or 1, outside
    torch.compile."""
    return device_type == "cpu" and build.available()


def triton_usable(device_type):
    """Whether the triton backend can run on this device: CUDA with Triton installed, or Triton's CPU interpreter."""
    return scan_triton is not None and (device_type == "cuda" or os.environ.get("TRITON_INTERPRET") == "1")


def default_backend(device_type, T):
    """The backend scan() runs when given none: DEFAULT_BACKEND if set, else by device and length."""
    if DEFAULT_BACKEND is not None:
        return DEFAULT_BACKEND
    if device_type == "cuda":
        if triton_usable("cuda") and T <= TRITON_MAX_T:
            return "triton"
        return "log" if T <= LOG_MAX_T else "chunked_log"
    return "c" if c_usable(device_type) else "chunked"


def default_linear_backend(device_type, T):
    """The backend scan_linear() runs when given none: scan()'s default where it serves scan_linear, else the CPU's
    (the log-space choices, by SCAN_BACKEND or on CUDA by length or without Triton, have no signed form)."""
    backend = default_backend(device_type, T)
    return backend if backend in LINEAR_BACKENDS else "c" if c_usable(device_type) else "chunked"


def _check_backend(backend, impls, device_type):
    if backend not in impls:
        if backend in BACKENDS:  # a log-space backend asked to serve scan_linear
            raise ValueError(f"the {backend} backend works on log(b), so it cannot take scan_linear's signed b; "
                             f"choose one of {', '.join(LINEAR_BACKENDS)}, or pass log-space inputs to scan()")
        raise ValueError(f"unknown scan backend {backend!r}; choose one of {', '.join(impls)}")
    if backend == "triton" and not triton_usable(device_type):
        raise ValueError("the triton scan backend needs Triton (pip install triton) and CUDA tensors, or "
                         "TRITON_INTERPRET=1 to run it on the CPU (slowly, for tests)")
    if backend == "c" and not c_usable(device_type):
        raise ValueError("the c scan backend needs CPU tensors and kernels/cpu.c built with a C compiler (see the "
                         "warning above, or set CC=...), and runs neither under torch.compile nor with C_KERNELS=0; "
                         "choose chunked instead")


def scan(log_a, log_b, h0=None, backend=None):
    """h_t = exp(log_a_t) * h_{t-1} + exp(log_b_t) for log_a, log_b (B, T, D) and h0 (B, D) or None (zeros)."""
    log_a, log_b, h0 = _checked_inputs("scan", ("log_a", "log_b"), log_a, log_b, h0)
    backend = backend or default_backend(log_a.device.type, log_a.size(1))
    _check_backend(backend, _IMPLS, log_a.device.type)
    with torch.autocast(device_type=log_a.device.type, enabled=False):
        return _IMPLS[backend](log_a, log_b, h0)


def scan_linear(a, b, h0=None, backend=None):
    """h_t = a_t * h_{t-1} + b_t with a, b (B, T, D) in linear space (a >= 0, b of any sign) and h0 (B, D) or None,
    without the round trip through log space: the parallel path of every RNN mixer in model.py."""
    a, b, h0 = _checked_inputs("scan_linear", ("a", "b"), a, b, h0)
    backend = backend or default_linear_backend(a.device.type, a.size(1))
    _check_backend(backend, _LINEAR_IMPLS, a.device.type)
    with torch.autocast(device_type=a.device.type, enabled=False):
        return _LINEAR_IMPLS[backend](a, b, h0)
