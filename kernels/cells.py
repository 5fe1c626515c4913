"""
kernels/cpu.c's minGRU and minLSTM cells, Mamba's selective scan and its causal conv as autograd Functions: one C
pass over memory each way, where model.py's composed ops make a dozen (cpu.c says why that matters at the CPU
recipe's sizes).

Nothing here defines a model. model.py calls these only through fastpath.py, which first checks that they compute
what model.py's MinGRU.gates, MinLSTM.gates, Mamba.discretize, .contract and .readout, and CausalConv.convolve
compute.
"""
import torch
from torch.autograd.function import once_differentiable

from kernels import build
from kernels.build import ptr


class _CellC(torch.autograd.Function):
    """A cell in cpu.c: the forward keeps only its input and output, the backward recomputes the gates."""

    @staticmethod
    def forward(ctx, kh, h0, cell):
        B, T, H = kh.size(0), kh.size(1), kh.size(2) // (2 if cell == "mingru" else 3)
        lib = build.library(kh.dtype)
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
        backward = getattr(build.library(kh.dtype), ctx.cell + "_backward")
        backward(ptr(kh), ptr(h0), ptr(h), ptr(grad_h), ptr(dkh), ptr(dh0), B, T, H)
        return dkh, dh0, None


class _SelectiveC(torch.autograd.Function):
    """Mamba's selective scan in cpu.c, from Delta's pre-activation to the gated readout: the forward keeps its
    inputs, C . h and the state before every 16th step, never the (B, T, H, N) states, nor Delta or the gate's
    (B, T, H) intermediates; the backward recomputes them chunk by chunk."""

    @staticmethod
    def forward(ctx, dt, A, Bm, Cm, u, z, D, h0):
        (B, T, H), N = dt.shape, A.size(1)
        y, q, hT = dt.new_empty(B, T, H), dt.new_empty(B, T, H), dt.new_empty(B, H, N)
        ck = dt.new_empty(B, (T + 15) // 16, H, N)  # cpu.c's SCHUNK = 16
        build.library(dt.dtype).selective_forward(ptr(dt), ptr(A), ptr(Bm), ptr(Cm), ptr(u), ptr(z), ptr(D),
                                                  ptr(h0), ptr(y), ptr(q), ptr(hT), ptr(ck), B, T, H, N)
        ctx.save_for_backward(dt, A, Bm, Cm, u, z, D, q, ck)
        ctx.has_h0 = h0 is not None
        return y, hT

    @staticmethod
    @once_differentiable
    def backward(ctx, dy, dhT):
        dt, A, Bm, Cm, u, z, D, q, ck = ctx.saved_tensors
        (B, T, H), N = dt.shape, A.size(1)
        dy = torch.zeros_like(dt) if dy is None else dy.to(dt.dtype).contiguous()  # held in names while C reads
        dhT = None if dhT is None else dhT.to(dt.dtype).contiguous()
        ddt, du, dz = torch.empty_like(dt), torch.empty_like(u), torch.empty_like(z)
        dB, dC = torch.empty_like(Bm), torch.empty_like(Cm)
        dA, dD = dt.new_empty(B, H, N), dt.new_empty(B, H)  # each batch row's share, summed below
        dh0 = dt.new_empty(B, H, N) if ctx.has_h0 and ctx.needs_input_grad[7] else None
        build.library(dt.dtype).selective_backward(*map(ptr, (dt, A, Bm, Cm, u, z, D, q, ck, dy, dhT, ddt, dA, dB,
                                                              dC, du, dz, dD, dh0)), B, T, H, N)
        return ddt, dA.sum(0), dB, dC, du, dz, dD.sum(0), dh0


class _ConvC(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xp, weight, bias):
        B, Tp, C = xp.shape
        K = weight.size(-1)
        w = weight.reshape(C, K).t().contiguous()  # (K, C): each tap's weights side by side, as the channels
        y = xp.new_empty(B, Tp - K + 1, C)
        build.library(xp.dtype).conv_forward(ptr(xp), ptr(w), ptr(bias), ptr(y), B, Tp - K + 1, C, K)
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
        lib = build.library(xp.dtype)
        lib.conv_backward(ptr(xp), ptr(w), ptr(dy), ptr(dxp), ptr(dw), ptr(dbias), B, Tp - K + 1, C, K)
        return dxp, dw.t().reshape(C, 1, K), dbias


def cell(name, kh, h0=None):
    """The C cell `name` ("mingru" or "minlstm"): h (B, T, H) of h_t = a_t h_{t-1} + b_t with a and b the cell's
    gates of kh (B, T, parts*H), from h0 (B, H) or zeros. kh and h0 in float32 or float64, on the CPU."""
    kh = kh.contiguous()
    h0 = None if h0 is None else h0.to(kh.dtype).contiguous()
    with torch.autocast(device_type="cpu", enabled=False):
        return _CellC.apply(kh, h0, name)


def selective_scan(dt, A, Bm, Cm, u, z, h0=None, *, D):
    """Mamba's selective scan and gated readout: y (B, T, H) = (C_t . h_t + D u_t) SiLU(z_t) and h_T (B, H, N) of
    h_t = exp(Delta_t A) h_{t-1} + Delta_t u_t B_t with Delta = softplus(dt), from dt, u, z (B, T, H), A (H, N),
    Bm, Cm (B, T, N), D (H) and h0 (B, H, N) or zeros; float32 or float64, on the CPU."""
    dtype = dt.dtype
    args = [t.to(dtype).contiguous() for t in (dt, A, Bm, Cm, u, z, D)]
    h0 = None if h0 is None else h0.to(dtype).contiguous()
    with torch.autocast(device_type="cpu", enabled=False):
        return _SelectiveC.apply(*args, h0)


def causal_conv(xp, weight, bias=None):
    """A depthwise causal conv y (B, T, C) from xp (B, T + K - 1, C), the input after the K - 1 before it, with a
    Conv1d's depthwise weight (C, 1, K) and bias (C) or None."""
    if xp.dim() != 3 or weight.shape != (xp.size(-1), 1, weight.size(-1)) or xp.size(1) < weight.size(-1):
        raise ValueError(f"causal_conv needs xp (B, T + K - 1, C) and a depthwise weight (C, 1, K); got "
                         f"{tuple(xp.shape)} and {tuple(weight.shape)}")
    params = [p.to(xp.dtype).contiguous() if p is not None else None for p in (weight, bias)]
    with torch.autocast(device_type="cpu", enabled=False):
        return _ConvC.apply(xp.contiguous(), *params)
