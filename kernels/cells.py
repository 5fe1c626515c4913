"""
kernels/cpu.c's minGRU and minLSTM cells and its causal conv as autograd Functions: one C pass over memory each
way, where model.py's composed ops make a dozen (cpu.c says why that matters at the CPU recipe's sizes).

Nothing here defines a model. model.py calls these only through fastpath.py, which first checks that they compute
what model.py's MinGRU.gates, MinLSTM.gates and CausalConv.convolve compute.
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


def causal_conv(xp, weight, bias=None):
    """A depthwise causal conv y (B, T, C) from xp (B, T + K - 1, C), the input after the K - 1 before it, with a
    Conv1d's depthwise weight (C, 1, K) and bias (C) or None."""
    if xp.dim() != 3 or weight.shape != (xp.size(-1), 1, weight.size(-1)) or xp.size(1) < weight.size(-1):
        raise ValueError(f"causal_conv needs xp (B, T + K - 1, C) and a depthwise weight (C, 1, K); got "
                         f"{tuple(xp.shape)} and {tuple(weight.shape)}")
    params = [p.to(xp.dtype).contiguous() if p is not None else None for p in (weight, bias)]
    with torch.autocast(device_type="cpu", enabled=False):
        return _ConvC.apply(xp.contiguous(), *params)
