"""
minGRU's and minLSTM's gates and scan as one autograd Function each, and the causal conv before them: the CPU's
training path.

model.py writes each cell in a few lines (gates, candidate, scan) and autograd differentiates them op by op. At the
CPU recipe's shapes (T = 64) every such op is small, so the layer's time goes to the dozen elementwise kernels around
the scan and to autograd's bookkeeping for each, more than to the scan. Here each cell takes the layer's
pre-activations, the output of its c_fc, forms a and b directly in linear space, runs the recurrence and writes the
gradient of all its pre-activations into one tensor in its own backward, with the gates' derivatives worked out by
hand:

    minGRU:  z = sigmoid(k), a = 1 - z, b = z * g(p)                                    kh = [k, p]
    minLSTM: i' = sigmoid(log sigmoid(i) - log sigmoid(f)) = i / (f + i), a = 1 - i', b = i' * g(p)    kh = [f, i, p]

with g(p) = p + 0.5 for p >= 0 and sigmoid(p) below (Appendix B): g'(p) = 1 above 0, g(p) (1 - g(p)) below.
For h_t = a_t h_{t-1} + b_t, the gradient gh_t = dL/dh_t runs backwards in time (the same recurrence in reverse), and
dL/da_t = gh_t h_{t-1}, dL/db_t = gh_t, so a gate u with a = 1 - u, b = u * g(p) gets dL/du = gh_t (g(p_t) - h_{t-1}).

Each cell comes in two forms, the same equations:
- the C kernels (kernels.c, built and loaded by kernels.py): one pass over memory each way, row by row in time,
  vectorised over channels and spread over the batch on PyTorch's threads; also the causal conv (causal_conv). The
  default on a CPU for float32 and float64; where kernels.c cannot be built, a warning says so and the next form runs.
- PyTorch ops in one autograd Function (_MinGRU, _MinLSTM): the chunked scan (scan.py) with the gates around it.
  Used where the C kernels are not: C_KERNELS=0, other dtypes or devices, and under torch.compile (which fuses the ops
  itself).

mingru_reference and minlstm_reference are the same cells composed from plain ops (autograd differentiates them);
tests/test_fused.py checks both forms against them in float64, values and gradients.
"""
import torch
from torch.autograd.function import once_differentiable
from torch.nn import functional as F

import kernels
from kernels import ptr
from scan import _linear_scan, scan_linear


def _g(p):
    """g(p) = p + 0.5 for p >= 0, sigmoid(p) below, as max(p, 0) + sigmoid(min(p, 0)); and sigmoid(min(p, 0)), which
    g's derivative needs. (torch.where and other ops on bool masks run several times slower on a CPU than clamp.)"""
    s = torch.sigmoid(p.clamp(max=0))
    return p.clamp(min=0).add_(s), s


def _g_prime(p, s):
    """g'(p) from s = sigmoid(min(p, 0)): 1 for p > 0, s (1 - s) = sigmoid'(p) for p <= 0 (s = 1/2 at p = 0)."""
    return torch.addcmul(s, s, s, value=-1).add_(torch.sign(p).clamp_(min=0), alpha=0.75)


def _gate_grad(u, gp, h, h0, gh):
    """dL/dx for the gate u = sigmoid(x) of a = 1 - u, b = u g(p): dL/du = gh_t (g(p_t) - h_{t-1}), times u (1 - u).
    Each line is one pass over (B, T, H): at the CPU recipe's sizes these ops are bound by memory traffic."""
    d = gp * gh
    d[:, 1:].addcmul_(h[:, :-1], gh[:, 1:], value=-1)
    if h0 is not None:
        d[:, 0].addcmul_(h0, gh[:, 0], value=-1)
    return d.mul_(torch.addcmul(u, u, u, value=-1))


def _reverse_scan(u, grad_h):
    """gh_t = grad_t + a_{t+1} gh_{t+1} with a = 1 - u: dL/dh_t, everything that h_t feeds in the future."""
    a_next = F.pad(1 - u[:, 1:], (0, 0, 0, 1))  # a_{t+1}, 0 past the end
    return _linear_scan(a_next, grad_h.contiguous(), reverse=True, consume_a=True)


class _MinGRU(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kh, h0):
        k, p = kh.chunk(2, dim=-1)
        z = torch.sigmoid(k)
        gp, s = _g(p)
        h = _linear_scan(1 - z, z * gp, h0, consume_a=True, consume_b=True)
        ctx.save_for_backward(kh, z, gp, s, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        kh, z, gp, s, h, h0 = ctx.saved_tensors
        gh = _reverse_scan(z, grad_h)
        dk = _gate_grad(z, gp, h, h0, gh)
        dp = (gh * z).mul_(_g_prime(kh.chunk(2, dim=-1)[1], s))  # dL/db * z * g'(p)
        grad_h0 = gh[:, 0] * (1 - z[:, 0]) if h0 is not None and ctx.needs_input_grad[1] else None
        return torch.cat([dk, dp], dim=-1), grad_h0


class _MinLSTM(torch.autograd.Function):
    @staticmethod
    def forward(ctx, kh, h0):
        f, i, p = kh.chunk(3, dim=-1)
        # F.logsigmoid's aten op, which also returns what its backward needs (on a CPU, exp(-|x|))
        log_f, buf_f = torch.ops.aten.log_sigmoid_forward(f)
        log_i, buf_i = torch.ops.aten.log_sigmoid_forward(i)
        ip = torch.sigmoid(log_i - log_f)  # i' = i / (f + i), never 0 / 0
        gp, s = _g(p)
        h = _linear_scan(1 - ip, ip * gp, h0, consume_a=True, consume_b=True)  # f' = 1 - i'
        ctx.save_for_backward(kh, buf_f, buf_i, ip, gp, s, h, h0)
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        kh, buf_f, buf_i, ip, gp, s, h, h0 = ctx.saved_tensors
        f, i, p = kh.chunk(3, dim=-1)
        gh = _reverse_scan(ip, grad_h)
        # i' = sigmoid(d) with d = log sigmoid(i) - log sigmoid(f), so dd/di = sigmoid(-i), dd/df = -sigmoid(-f)
        dd = _gate_grad(ip, gp, h, h0, gh)
        di = torch.ops.aten.log_sigmoid_backward(dd, i, buf_i)  # dd * sigmoid(-i)
        df = torch.ops.aten.log_sigmoid_backward(dd, f, buf_f).neg_()
        dp = (gh * ip).mul_(_g_prime(p, s))
        grad_h0 = gh[:, 0] * (1 - ip[:, 0]) if h0 is not None and ctx.needs_input_grad[1] else None
        return torch.cat([df, di, dp], dim=-1), grad_h0


class _CellC(torch.autograd.Function):
    """A cell in kernels.c: the forward keeps only its input and output, the backward recomputes the gates."""

    @staticmethod
    def forward(ctx, kh, h0, cell):
        B, T, H = kh.size(0), kh.size(1), kh.size(2) // (2 if cell == "mingru" else 3)
        lib = kernels.library(kh.dtype)
        h = kh.new_empty(B, T, H)
        getattr(lib, cell + "_forward")(ptr(kh), ptr(h0), ptr(h), B, T, H)
        ctx.save_for_backward(kh, h0, h)
        ctx.cell = cell
        return h

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_h):
        kh, h0, h = ctx.saved_tensors
        B, T, H = h.shape
        grad_h = grad_h.to(h.dtype).contiguous()  # held in a name while C reads it: a temporary would be freed
        dkh = torch.empty_like(kh)
        dh0 = torch.empty_like(h0) if h0 is not None and ctx.needs_input_grad[1] else None
        backward = getattr(kernels.library(kh.dtype), ctx.cell + "_backward")
        backward(ptr(kh), ptr(h0), ptr(h), ptr(grad_h), ptr(dkh), ptr(dh0), B, T, H)
        return dkh, dh0, None


class _ConvC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, weight, bias):
        B, Tp, C = xp.shape
        K = weight.size(-1)
        w = weight.reshape(C, K).t().contiguous()  # (K, C): each tap's weights side by side, as the channels
        y = xp.new_empty(B, Tp - K + 1, C)
        kernels.library(xp.dtype).conv_forward(ptr(xp), ptr(w), ptr(bias), ptr(y), B, Tp - K + 1, C, K)
        ctx.save_for_backward(xp, w, bias)
        return y

    @staticmethod
    @once_differentiable
    def backward(ctx, dy):
        xp, w, bias = ctx.saved_tensors
        (B, Tp, C), K = xp.shape, w.size(0)
        dy = dy.to(xp.dtype).contiguous()  # held in a name while C reads it
        dxp, dw = torch.empty_like(xp), torch.empty_like(w)
        dbias = None if bias is None else torch.empty_like(bias)
        lib = kernels.library(xp.dtype)
        lib.conv_backward(ptr(xp), ptr(w), ptr(dy), ptr(dxp), ptr(dw), ptr(dbias), B, Tp - K + 1, C, K)
        return dxp, dw.t().reshape(C, 1, K), dbias


def causal_conv(xp, weight, bias=None):
    """model.CausalConv's y (B, T, C) from xp (B, T + K - 1, C), the input after the K - 1 before it, with a Conv1d's
    depthwise weight (C, 1, K) and bias (C) or None, by kernels.c; only where kernels.usable(xp) holds."""
    if xp.dim() != 3 or weight.shape != (xp.size(-1), 1, weight.size(-1)) or xp.size(1) < weight.size(-1):
        raise ValueError(f"causal_conv needs xp (B, T + K - 1, C) and a depthwise weight (C, 1, K); got "
                         f"{tuple(xp.shape)} and {tuple(weight.shape)}")
    params = [p.to(xp.dtype).contiguous() if p is not None else None for p in (weight, bias)]
    return _ConvC.apply(xp.contiguous(), *params)


def _checked(fn, kh, h0, parts):
    if kh.dim() != 3 or kh.size(-1) % parts:
        raise ValueError(f"{fn} needs the layer's pre-activations (B, T, {parts}*H); got {tuple(kh.shape)}")
    if h0 is not None and h0.shape != (kh.size(0), kh.size(-1) // parts):
        raise ValueError(f"h0 must have shape (B, H) = {(kh.size(0), kh.size(-1) // parts)}; got {tuple(h0.shape)}")
    dtype = torch.float64 if kh.dtype == torch.float64 else torch.float32  # float32 under autocast, as scan()
    return kh.to(dtype).contiguous(), None if h0 is None else h0.to(dtype).contiguous()


def mingru(kh, h0=None):
    """minGRU's h (B, T, H) from kh = c_fc(x) = [k, p] (B, T, 2H), gates and scan fused; h0 (B, H) or None."""
    kh, h0 = _checked("mingru", kh, h0, 2)
    with torch.autocast(device_type=kh.device.type, enabled=False):
        return _CellC.apply(kh, h0, "mingru") if kernels.usable(kh) else _MinGRU.apply(kh, h0)


def minlstm(kh, h0=None):
    """minLSTM's h (B, T, H) from kh = c_fc(x) = [f, i, p] (B, T, 3H), gates and scan fused; h0 (B, H) or None."""
    kh, h0 = _checked("minlstm", kh, h0, 3)
    with torch.autocast(device_type=kh.device.type, enabled=False):
        return _CellC.apply(kh, h0, "minlstm") if kernels.usable(kh) else _MinLSTM.apply(kh, h0)


def mingru_reference(kh, h0=None, backend="reference"):
    """The same cell from model.py's g and plain ops, for the tests: autograd differentiates it."""
    from model import g  # model.py imports this module
    k, p = kh.chunk(2, dim=-1)
    z = torch.sigmoid(k)
    return scan_linear(1 - z, z * g(p), h0, backend=backend)


def minlstm_reference(kh, h0=None, backend="reference"):
    from model import g
    f, i, p = kh.chunk(3, dim=-1)
    ip = torch.sigmoid(F.logsigmoid(i) - F.logsigmoid(f))
    return scan_linear(1 - ip, ip * g(p), h0, backend=backend)
