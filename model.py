"""
A language model whose token mixer is causal self-attention (the GPT baseline), minGRU, minLSTM or Mamba.

minGRU and minLSTM come from "Were RNNs All We Needed?" (Feng et al. 2024, arXiv 2410.01201), Mamba from Gu & Dao
2023 (arXiv 2312.00752), the paper's fourth model. Their gates depend only on the input, so the recurrence
h_t = a_t * h_{t-1} + b_t is linear in h and the whole sequence is computed at once by a parallel scan (scan.py).
Everything else is nanoGPT: pre-norm blocks, a GELU MLP, tied embeddings (by default).

Two modes, always chosen explicitly:
- parallel: forward(idx, targets) for training and evaluation; prefill(idx, state) to process a prompt and
  return the state it ends in.
- recurrent: step(idx_t, state) consumes one token. The RNNs carry a constant-size state (each layer's hidden
  vector, or Mamba's (hidden, d_state) matrix, plus the conv's last k-1 inputs); the GPT carries its KV cache
  (cache.py).
"""
import math
import re
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from cache import make_cache
from kernels import fastpath
from scan import scan_linear

NORMS = ("layernorm", "rmsnorm")
INITS = ("gpt2", "torch", "mamba")
POSITIONS = ("learned", "rope")
ACTIVATIONS = ("gelu", "relu2")
OPTIMIZERS = ("adamw", "muon")
# the oldest PyTorch the code runs on: F.rms_norm (QK-norm) and the CPU's fused AdamW arrived in 2.4. Muon
# (torch.optim.Muon, every CPU config's optimizer) arrived in 2.9, and is checked where it is chosen (muon_missing)
TORCH_FLOOR = (2, 4)


def check_torch(version):
    """Raises ImportError, one line, where PyTorch `version` ("2.3.1+cpu") is older than TORCH_FLOOR."""
    major, minor = map(int, re.match(r"(\d+)\.(\d+)", version).groups())
    if (major, minor) < TORCH_FLOOR:
        raise ImportError(f"minrnn needs PyTorch >= 2.4 (F.rms_norm, the CPU's fused AdamW), and >= 2.9 for "
                          f"optimizer='muon' (torch.optim.Muon); this is {version}: upgrade (requirements.txt)")


def muon_missing():
    """None where torch.optim.Muon exists (PyTorch >= 2.9), else the line that says what to do."""
    if hasattr(torch.optim, "Muon"):
        return None
    return (f"optimizer='muon' needs PyTorch >= 2.9 (torch.optim.Muon); this is {torch.__version__}: upgrade, or "
            f"set optimizer='adamw'")


check_torch(torch.__version__)  # at import, before an older PyTorch fails somewhere deep inside a forward


class LayerNorm(nn.Module):
    """LayerNorm with an optional bias (PyTorch's has no bias=False before 2.1)."""

    def __init__(self, ndim, bias):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x):
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, 1e-5)


class RMSNorm(nn.Module):
    """x / rms(x) * weight: LayerNorm without the mean and the bias (Zhang & Sennrich 2019)."""

    def __init__(self, ndim):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))

    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=-1, keepdim=True) + 1e-5) * self.weight


def make_norm(config):
    return LayerNorm(config.n_embd, config.bias) if config.norm == "layernorm" else RMSNorm(config.n_embd)


class CausalConv(nn.Module):
    """Depthwise causal conv over time. Its recurrent state is the last k-1 inputs, (B, k-1, C)."""

    def __init__(self, n_embd, kernel, bias):
        super().__init__()
        self.conv = nn.Conv1d(n_embd, n_embd, kernel, groups=n_embd, bias=bias)

    def convolve(self, xp):
        # xp (B, k-1+T, C): the input after the k-1 before it -> y (B, T, C), where output t sees inputs t-k+1..t:
        # y_t = bias + sum_j w_j * xp_{t+j}, k shifted multiply-adds (faster than Conv1d on the transposed input,
        # and they leave y contiguous for the Linear after)
        k = self.conv.kernel_size[0]
        T = xp.size(1) - k + 1
        w = self.conv.weight[:, 0]  # (C, k)
        y = xp[:, :T] * w[:, 0] if self.conv.bias is None else torch.addcmul(self.conv.bias, xp[:, :T], w[:, 0])
        for j in range(1, k):
            y = torch.addcmul(y, xp[:, j:j + T], w[:, j])
        return y

    def forward(self, x, tail=None):
        # x: (B, T, C); tail: (B, k-1, C) inputs before x, zeros at the start of a sequence
        k = self.conv.kernel_size[0]
        xp = F.pad(x, (0, 0, k - 1, 0)) if tail is None else torch.cat([tail, x], dim=1)  # (B, k-1+T, C)
        fast = fastpath.conv(self.convolve, xp)  # on a CPU: convolve in one C loop, where it computes the same
        return (self.convolve(xp) if fast is None else fast(xp)), xp[:, xp.size(1) - (k - 1):]


def g(x):
    # Appendix B: g keeps the candidate state positive (h~ = x + 1/2 above 0, sigmoid(x) below)
    return torch.where(x >= 0, x + 0.5, torch.sigmoid(x))


class MinGRU(nn.Module):
    """Section 3.1: z_t = sigmoid(Linear(x_t)), h~_t = g(Linear(x_t)), h_t = (1 - z_t) * h_{t-1} + z_t * h~_t.
    gates() is the cell: forward (all t at once, by a parallel scan) and step (one t) are both built on it."""

    def __init__(self, config):
        super().__init__()
        self.hidden = config.hidden
        self.c_fc = nn.Linear(config.n_embd, 2 * self.hidden, bias=config.bias)  # gate and candidate, from x only
        self.c_proj = nn.Linear(self.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def gates(self, kh):
        # kh = c_fc(x) (..., 2H) -> a, b (..., H) of the recurrence h_t = a_t * h_{t-1} + b_t
        k, pre_h = kh.chunk(2, dim=-1)
        z = torch.sigmoid(k)  # the update gate
        return 1 - z, z * g(pre_h)

    def forward(self, x, h0=None):
        # parallel: x (B, T, C), h0 (B, H) or None for zeros -> y (B, T, C), h_T (B, H)
        kh = self.c_fc(x).to(self.c_fc.weight.dtype)  # (B, T, 2H); the recurrence in float32 under autocast
        fast = fastpath.cell("mingru", self.gates, kh)  # on a CPU: the two lines below in one C pass, where they
        if fast is not None:  # compute what gates says (checked on first use, kernels/fastpath.py)
            h = fast(kh, h0)
        else:
            a, b = self.gates(kh)  # (B, T, H) each
            h = scan_linear(a, b, h0)  # (B, T, H): every t at once
        return self.dropout(self.c_proj(h.to(x.dtype))), h[:, -1]

    def step(self, x, h):
        # recurrent: x (B, C), h (B, H) -> y (B, C), the next h
        a, b = self.gates(self.c_fc(x).to(self.c_fc.weight.dtype))
        h = a * h + b
        return self.dropout(self.c_proj(h.to(x.dtype))), h


class MinLSTM(nn.Module):
    """Section 3.2: f_t, i_t = sigmoid(Linear(x_t)), h~_t = g(Linear(x_t)), normalised to f' = f / (f + i) and
    i' = i / (f + i) (Section 3.2.3, time-independent scale), h_t = f'_t * h_{t-1} + i'_t * h~_t. gates() is the
    cell, as MinGRU's."""

    def __init__(self, config):
        super().__init__()
        self.hidden = config.hidden
        self.c_fc = nn.Linear(config.n_embd, 3 * self.hidden, bias=config.bias)
        self.c_proj = nn.Linear(self.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def gates(self, kh):
        # kh = c_fc(x) (..., 3H) -> a = f', b = i' * h~ (..., H). The carried state enters as is: g() applies to
        # candidates only, never to h_{t-1}
        f, i, pre_h = kh.chunk(3, dim=-1)
        # i' = i / (f + i) = sigmoid(log i - log f) and f' = 1 - i': never 0 / 0 when both sigmoids underflow to 0
        log_ratio = F.logsigmoid(i) - F.logsigmoid(f)  # log i - log f
        return torch.sigmoid(-log_ratio), torch.sigmoid(log_ratio) * g(pre_h)

    def forward(self, x, h0=None):
        kh = self.c_fc(x).to(self.c_fc.weight.dtype)  # (B, T, 3H)
        fast = fastpath.cell("minlstm", self.gates, kh)  # as MinGRU's forward
        if fast is not None:
            h = fast(kh, h0)
        else:
            a, b = self.gates(kh)
            h = scan_linear(a, b, h0)
        return self.dropout(self.c_proj(h.to(x.dtype))), h[:, -1]

    def step(self, x, h):
        a, b = self.gates(self.c_fc(x).to(self.c_fc.weight.dtype))
        h = a * h + b
        return self.dropout(self.c_proj(h.to(x.dtype))), h


class Mamba(nn.Module):
    """Mamba's block (Gu & Dao 2023, Section 3.4): x and a gate z from one projection; x through a causal depthwise
    conv and SiLU; the selective SSM (Algorithm 2) with input-dependent step Delta, B and C and a diagonal A < 0;
    the D skip; y * SiLU(z) projected back. Per hidden channel d and state index n (zero-order hold on A, Euler on
    B, as the official kernels): h_t[d, n] = exp(Delta_t[d] A[d, n]) h_{t-1}[d, n] + Delta_t[d] B_t[n] x_t[d], and
    y_t[d] = sum_n C_t[n] h_t[d, n] + D[d] x_t[d]. ssm() gives the selective parameters, discretize() Delta and the
    a and b of that recurrence, contract() the C . h, readout() the D skip and the gate: forward and step are both
    built on them."""

    def __init__(self, config):
        super().__init__()
        self.hidden, self.d_state = config.hidden, config.d_state
        self.dt_rank = math.ceil(config.n_embd / 16)  # Mamba's "auto" rank of Delta's projection
        self.in_proj = nn.Linear(config.n_embd, 2 * self.hidden, bias=config.bias)  # x and the gate z
        # Mamba's own conv sits here, on the expanded x branch (config.conv is its kernel; 0 = none)
        self.conv = CausalConv(self.hidden, config.conv, config.bias) if config.conv else None
        self.x_proj = nn.Linear(self.hidden, self.dt_rank + 2 * self.d_state, bias=False)  # Delta (low rank), B, C
        self.dt_proj = nn.Linear(self.dt_rank, self.hidden, bias=True)
        self.A_log = nn.Parameter(torch.empty(self.hidden, self.d_state))  # A = -exp(A_log) < 0: h decays
        self.D = nn.Parameter(torch.empty(self.hidden))
        self.c_proj = nn.Linear(self.hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)
        self.reset_ssm_parameters()

    @torch.no_grad()
    def reset_ssm_parameters(self, dt_min=1e-3, dt_max=0.1):
        """Mamba's init (S4D-real A, D = 1, Delta's bias so that softplus(bias) is log-uniform in [dt_min, dt_max]).
        GPT.init_weights calls it last, whatever config.init says: these are not ordinary Linear weights."""
        n = torch.arange(1, self.d_state + 1, dtype=torch.float32, device=self.A_log.device)
        self.A_log.copy_(torch.log(n).expand(self.hidden, -1))  # A[d, n] = -(n + 1)
        self.D.fill_(1.0)
        nn.init.uniform_(self.dt_proj.weight, -self.dt_rank ** -0.5, self.dt_rank ** -0.5)
        u = torch.rand(self.hidden, device=self.D.device)
        dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min)).clamp(min=1e-4)
        self.dt_proj.bias.copy_(dt + torch.log(-torch.expm1(-dt)))  # softplus^-1(dt)

    def ssm(self, u):
        # u (..., H), after conv and SiLU -> the selective SSM's parameters at each t: Delta's pre-activation dt
        # (..., H), A (H, N), B and C (..., N), and u; in the parameters' dtype, so that under autocast the recurrence
        # runs in float32, not bf16
        dt, B, C = self.x_proj(u).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        dtype = self.A_log.dtype
        A = -torch.exp(self.A_log)  # (H, N)
        return self.dt_proj(dt).to(dtype), A, B.to(dtype), C.to(dtype), u.to(dtype)

    def discretize(self, dt, A, B, u):
        # -> a, b (..., H, N) of h_t = a_t * h_{t-1} + b_t, with the step Delta = softplus(dt) > 0: zero-order hold
        # on A, in (0, 1]; Euler on B, signed, so the scan runs in linear space
        dt = F.softplus(dt)
        return torch.exp(dt.unsqueeze(-1) * A), (dt * u).unsqueeze(-1) * B.unsqueeze(-2)

    def contract(self, h, C):
        # C_t . h_t: h (..., H, N), C (..., N) -> (..., H), one batched matmul
        return (h @ C.unsqueeze(-1)).squeeze(-1)

    def readout(self, y, u, z):
        # (C . h + D x) * SiLU(z): y = C . h, u and z (..., H) -> (..., H)
        return (y + self.D * u) * F.silu(z)

    def forward(self, x, h0=None, tail=None):
        # parallel: x (B, T, C), h0 (B, H, N) and the conv's tail (B, k-1, H), or None for zeros
        # -> y (B, T, C), h_T (B, H, N), the new tail (None without a conv)
        Bsz, T, _ = x.shape
        u, z = self.in_proj(x).chunk(2, dim=-1)  # (B, T, H) each
        if self.conv is not None:
            u, tail = self.conv(u, tail)
        dt, A, B, C, u = self.ssm(F.silu(u))  # (B, T, H), (H, N), (B, T, N), (B, T, N), (B, T, H)
        fast = fastpath.selective(self.discretize, self.contract, self.readout, dt)  # on a CPU: the lines below
        if fast is not None:  # in one C pass each way, never forming the (B, T, H, N) tensors (kernels/fastpath.py)
            y, hT = fast(dt, A, B, C, u, z, h0)
        else:
            a, b = self.discretize(dt, A, B, u)  # (B, T, H, N) each
            h = scan_linear(a.flatten(2), b.flatten(2), None if h0 is None else h0.flatten(1))
            h = h.view(Bsz, T, self.hidden, self.d_state)  # float32 even under autocast
            y, hT = self.readout(self.contract(h, C), u, z), h[:, -1]
        return self.dropout(self.c_proj(y)), hT, tail

    def step(self, x, h, tail=None):
        # recurrent: x (B, C), h (B, H, N), tail (B, k-1, H) or None -> y (B, C), the next h and tail
        u, z = self.in_proj(x).chunk(2, dim=-1)
        if self.conv is not None:
            u, tail = self.conv(u.unsqueeze(1), tail)
            u = u.squeeze(1)
        dt, A, B, C, u = self.ssm(F.silu(u))  # (B, H), (H, N), (B, N), (B, N), (B, H)
        a, b = self.discretize(dt, A, B, u)  # (B, H, N) each
        h = a * h + b
        return self.dropout(self.c_proj(self.readout(self.contract(h, C), u, z))), h, tail


def rotate(x, pos):
    # RoPE (Su et al. 2021): x (B, nh, T, hs) at positions pos (T,); channel pairs (i, i + hs/2) turn by the angle
    # pos * 10000^(-i / (hs/2)), so q . k depends on the two tokens' distance only
    half, dtype = x.size(-1) // 2, torch.promote_types(x.dtype, torch.float32)  # the angles at least in float32
    freq = 10000.0 ** (-torch.arange(half, device=x.device, dtype=dtype) / half)
    angle = pos.to(dtype).unsqueeze(-1) * freq  # (T, hs/2)
    cos, sin = angle.cos().to(x.dtype), angle.sin().to(x.dtype)
    x1, x2 = x[..., :half], x[..., half:]
    return torch.cat([x1 * cos - x2 * sin, x1 * sin + x2 * cos], dim=-1)


class CausalSelfAttention(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.n_head, self.n_embd = config.n_head, config.n_embd
        self.rope, self.qk_norm = config.pos == "rope", config.qk_norm
        self.c_attn = nn.Linear(config.n_embd, 3 * config.n_embd, bias=config.bias)
        self.c_proj = nn.Linear(config.n_embd, config.n_embd, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)
        self.dropout = config.dropout

    def forward(self, x, cache=None, pos=None):
        # x (B, T, C), pos (T,) the tokens' positions. Training: cache is None. Inference: cache is a LayerKV.
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(self.n_embd, dim=2)
        q, k, v = (t.view(B, T, self.n_head, C // self.n_head).transpose(1, 2) for t in (q, k, v))  # (B, nh, T, hs)
        if self.qk_norm:  # unit-RMS queries and keys: the logits' scale cannot run away (Dehghani et al. 2023)
            q, k = F.rms_norm(q, (q.size(-1),)), F.rms_norm(k, (k.size(-1),))
        if self.rope:  # a cached key keeps the rotation of its own position, whatever the policy evicts around it
            q, k = rotate(q, pos), rotate(k, pos)
        if cache is None:
            y = F.scaled_dot_product_attention(q, k, v, dropout_p=self.dropout if self.training else 0.0,
                                               is_causal=True)
        else:
            # explicit softmax: the cache policies (H2O, TOVA) read the attention weights
            k, v, kpos = cache.append(k, v, pos)  # (B, nh, L, hs), (B, nh, L) with L = cached + T
            att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(k.size(-1)))  # (B, nh, T, L)
            visible = kpos.unsqueeze(2) <= pos.view(1, 1, T, 1)  # causal by position, not by index
            att = F.softmax(att.masked_fill(~visible, float("-inf")), dim=-1)
            y = self.attn_dropout(att) @ v  # (B, nh, T, hs)
            cache.evict(att)
        y = y.transpose(1, 2).contiguous().view(B, T, C)
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, config.mlp_hidden, bias=config.bias)
        # GPT-2's GELU, or relu(x)^2 (So et al. 2021, "Primer"; modded-nanogpt's MLP)
        self.act = nn.GELU() if config.activation == "gelu" else lambda x: F.relu(x).square()
        self.c_proj = nn.Linear(config.mlp_hidden, config.n_embd, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x):
        return self.dropout(self.c_proj(self.act(self.c_fc(x))))


# config.mixer -> its class. A new mixer: a class with forward (parallel) and step (one token), and a line here;
# Block and GPT.init_state handle an RNN whose state is one (B, hidden) tensor (README, "Hacking")
MIXERS = {"attn": CausalSelfAttention, "mingru": MinGRU, "minlstm": MinLSTM, "mamba": Mamba}


class Block(nn.Module):
    """norm -> (conv) -> mixer -> residual, then norm -> MLP -> residual (unless config.mlp is False)."""

    def __init__(self, config):
        super().__init__()
        self.mixer_name = config.mixer
        self.ln_1 = make_norm(config)
        # the conv before the mixer; Mamba has its own inside
        self.conv = CausalConv(config.n_embd, config.conv, config.bias) if config.conv and config.mixer != "mamba" \
            else None
        self.mixer = MIXERS[config.mixer](config)
        self.ln_2 = make_norm(config) if config.mlp else None
        self.mlp = MLP(config) if config.mlp else None

    def forward(self, x, state=None, pos=None):
        # parallel over x (B, T, C). state None: training (no state in or out); else this layer's state dict.
        u, tail = self.ln_1(x), None
        if self.conv is not None:
            u, tail = self.conv(u, None if state is None else state["conv"])
        if self.mixer_name == "attn":
            y = self.mixer(u, None if state is None else state["kv"], pos)
        elif self.mixer_name == "mamba":  # its conv tail travels with it
            y, h, tail = self.mixer(u, *((None, None) if state is None else (state["h"], state.get("conv"))))
        else:
            y, h = self.mixer(u, None if state is None else state["h"])
        if state is not None:
            state = dict(state)
            if tail is not None:
                state["conv"] = tail
            if self.mixer_name != "attn":
                state["h"] = h
        return self._mlp(x + y), state

    def _mlp(self, x):
        return x if self.mlp is None else x + self.mlp(self.ln_2(x))

    def step(self, x, state, pos):
        # recurrent: one token x (B, C). The RNNs use their sequential form; attention attends to its cache.
        if self.mixer_name == "attn":
            x, state = self.forward(x.unsqueeze(1), state, pos)
            return x.squeeze(1), state
        state = dict(state)
        u = self.ln_1(x)
        if self.conv is not None:
            u, state["conv"] = self.conv(u.unsqueeze(1), state["conv"])
            u = u.squeeze(1)
        if self.mixer_name == "mamba":
            y, state["h"], tail = self.mixer.step(u, state["h"], state.get("conv"))
            if tail is not None:
                state["conv"] = tail
        else:
            y, state["h"] = self.mixer.step(u, state["h"])
        return self._mlp(x + y), state


@dataclass
class GPTConfig:
    block_size: int = 1024  # training context in tokens (the GPT's learned positions; RoPE and the RNNs run past it)
    vocab_size: int = 50304  # GPT-2's 50257 padded to a multiple of 64; train.py's None: the dataset's
    n_layer: int = 12  # blocks
    n_head: int = 12  # attention heads (the GPT only)
    n_embd: int = 768  # width of the residual stream
    dropout: float = 0.0  # on the residual branches and attention weights, training only
    bias: bool = True  # bias in Linears, convs and LayerNorms, as GPT-2
    mixer: str = "attn"  # "attn" | "mingru" | "minlstm" | "mamba"
    expansion: float = 1.0  # the paper's alpha (Mamba's expand): RNN hidden width = expansion * n_embd
    conv: int = 0  # kernel size of a causal depthwise conv before the mixer (inside Mamba, on its x branch); 0 = off
    d_state: int = 16  # Mamba's N: state entries per hidden channel
    mlp: bool = True  # False drops each block's MLP, as the paper's selective-copying models (Section 4.1)
    mlp_ratio: float = 4.0  # MLP hidden width = mlp_ratio * n_embd (GPT-2: 4)
    norm: str = "layernorm"  # "layernorm" (GPT-2) | "rmsnorm" (no mean, no bias)
    init: str = "gpt2"  # weight init, see GPT.init_weights: "gpt2" | "torch" | "mamba"
    tie_embeddings: bool = True  # the token embedding is lm_head's weight (nanoGPT); False: two matrices
    activation: str = "gelu"  # the MLP's: "gelu" (GPT-2) | "relu2" (squared ReLU)
    pos: str = "learned"  # the GPT's positions: "learned" (a table of block_size, GPT-2) | "rope" (rotary, no table)
    qk_norm: bool = False  # the GPT's queries and keys RMS-normalised per head before the dot product

    def __post_init__(self):
        for key, valid in (("mixer", tuple(MIXERS)), ("norm", NORMS), ("init", INITS), ("pos", POSITIONS),
                           ("activation", ACTIVATIONS)):
            if getattr(self, key) not in valid:
                raise ValueError(f"unknown {key} {getattr(self, key)!r}; choose one of {', '.join(valid)}")
        for name in ("block_size", "vocab_size", "n_layer", "n_head", "n_embd", "d_state"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1 (got {getattr(self, name)})")
        if self.conv < 0:
            raise ValueError(f"conv is a kernel size: 0 (off) or >= 1 (got {self.conv})")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1) (got {self.dropout})")
        if self.mixer == "attn" and self.n_embd % self.n_head:
            raise ValueError(f"n_embd ({self.n_embd}) must be divisible by n_head ({self.n_head}) for attention")
        if self.mixer == "attn" and self.pos == "rope" and self.n_embd // self.n_head % 2:
            raise ValueError(f"rope turns pairs of channels, so the head size n_embd / n_head must be even (got "
                             f"{self.n_embd // self.n_head})")
        if self.mixer != "attn" and (self.pos != "learned" or self.qk_norm):
            raise ValueError(f"pos and qk_norm configure attention; a {self.mixer} model has neither, so leave "
                             f"them at pos='learned', qk_norm=False")
        if self.mixer != "attn" and self.hidden < 1:
            raise ValueError(f"expansion * n_embd must be >= 1 (got expansion={self.expansion})")
        if self.mlp and self.mlp_hidden < 1:
            raise ValueError(f"mlp_ratio * n_embd must be >= 1 (got mlp_ratio={self.mlp_ratio}); "
                             f"use mlp=False for no MLP")

    @property
    def hidden(self):
        return round(self.expansion * self.n_embd)

    @property
    def mlp_hidden(self):
        return round(self.mlp_ratio * self.n_embd)


class GPT(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.learned_positions = config.mixer == "attn" and config.pos == "learned"
        self.transformer = nn.ModuleDict({
            "wte": nn.Embedding(config.vocab_size, config.n_embd),
            "drop": nn.Dropout(config.dropout),
            "h": nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            "ln_f": make_norm(config),
        })
        if self.learned_positions:
            # learned absolute positions; RoPE and the RNNs need none, which is what lets them run past block_size
            self.transformer.wpe = nn.Embedding(config.block_size, config.n_embd)
        self.lm_head = nn.Linear(config.n_embd, config.vocab_size, bias=False)
        if config.tie_embeddings:
            self.transformer.wte.weight = self.lm_head.weight  # weight tying, as nanoGPT
        self.init_weights()
        print(f"number of parameters: {self.get_num_params() / 1e6:.2f}M")

    @torch.no_grad()
    def init_weights(self):
        """config.init picks the scheme. Every Linear and conv starts from PyTorch's default (uniform in
        +-1/sqrt(fan_in)) and every bias from zero; then
        - "gpt2" (nanoGPT): every Linear and the embedding ~ N(0, 0.02), the residual projections (c_proj) scaled
          by 1/sqrt(2 * n_layer), as GPT-2;
        - "torch": PyTorch's defaults as they are, as lucidrains/minGRU-pytorch (a tied embedding is lm_head's, an
          untied one nn.Embedding's N(0, 1));
        - "mamba": as mamba_ssm: the embedding ~ N(0, 0.02) and the residual projections' default init scaled by
          1/sqrt(2 * n_layer); the other Linears keep the default.
        For the gates, the scale matters: at 0.02 every gate pre-activation starts near 0, so every unit starts
        with the same memory (a = 1/2 per step); at PyTorch's scale they start spread out (ablation in README).
        Mamba's A, D and Delta's projection always get Mamba's own init, last (Mamba.reset_ssm_parameters)."""
        c = self.config
        for module in self.modules():
            if isinstance(module, (nn.Linear, nn.Conv1d)):
                module.reset_parameters()
                if module.bias is not None:
                    nn.init.zeros_(module.bias)
        if c.init == "gpt2":
            for module in self.modules():
                if isinstance(module, nn.Linear):
                    nn.init.normal_(module.weight, mean=0.0, std=0.02)
        if c.init in ("gpt2", "mamba"):
            nn.init.normal_(self.transformer.wte.weight, mean=0.0, std=0.02)
            if self.learned_positions:
                nn.init.normal_(self.transformer.wpe.weight, mean=0.0, std=0.02)
            for name, p in self.named_parameters():
                if name.endswith("c_proj.weight"):  # the projections that write into the residual stream
                    p.mul_(1 / math.sqrt(2 * c.n_layer))
        for module in self.modules():
            if isinstance(module, Mamba):
                module.reset_ssm_parameters()

    def get_num_params(self, non_embedding=True):
        """Parameter count. As nanoGPT, position embeddings are subtracted; token embeddings count via lm_head."""
        n_params = sum(p.numel() for p in self.parameters())
        if non_embedding and self.learned_positions:
            n_params -= self.transformer.wpe.weight.numel()
        return n_params

    def _embed(self, idx, pos0):
        # idx (B, T) of tokens at positions pos0 .. pos0+T-1 -> x (B, T, C), pos (T,)
        T = idx.size(1)
        pos = torch.arange(pos0, pos0 + T, dtype=torch.long, device=idx.device)
        x = self.transformer.wte(idx)
        if self.learned_positions:
            if pos0 + T > self.config.block_size:
                raise ValueError(f"the GPT has learned positions for {self.config.block_size} tokens (block_size) "
                                 f"and cannot process position {pos0 + T - 1}; shorten the input, or use an RNN "
                                 f"mixer (mingru, minlstm, mamba) or pos='rope', which have no such limit")
            x = x + self.transformer.wpe(pos)
        return self.transformer.drop(x), pos

    def forward(self, idx, targets=None):
        """Parallel path. idx (B, T) -> logits (B, T, V) and the loss with targets, else (B, 1, V) and None."""
        x, pos = self._embed(idx, 0)
        for block in self.transformer.h:
            x, _ = block(x, pos=pos)
        x = self.transformer.ln_f(x)
        if targets is not None:
            logits = self.lm_head(x)
            loss = F.cross_entropy(logits.view(-1, logits.size(-1)), targets.reshape(-1), ignore_index=-1)
            return logits, loss
        return self.lm_head(x[:, [-1], :]), None  # inference: only the last position is needed

    def init_state(self, batch_size, **cache_options):
        """The recurrent state before any token: per layer, h = 0 (RNNs) or an empty KV cache (attn).
        prefill and step return a new state dict; a KV cache inside it is updated in place: don't reuse an old one."""
        c, p = self.config, self.lm_head.weight
        if c.mixer == "attn":
            caches = make_cache(c.n_layer, **cache_options)
            layers = [{"kv": kv} for kv in caches]
        else:
            if cache_options:
                raise ValueError(f"cache options ({', '.join(cache_options)}) apply to the GPT's KV cache only; "
                                 f"a {c.mixer} model keeps a fixed-size state, so drop them")
            shape = (batch_size, c.hidden, c.d_state) if c.mixer == "mamba" else (batch_size, c.hidden)
            layers = [{"h": torch.zeros(shape, device=p.device, dtype=p.dtype)} for _ in range(c.n_layer)]
        if c.conv:
            width = c.hidden if c.mixer == "mamba" else c.n_embd  # Mamba's conv runs on its expanded x branch
            for layer in layers:
                layer["conv"] = torch.zeros(batch_size, c.conv - 1, width, device=p.device, dtype=p.dtype)
        return {"pos": 0, "layers": layers}

    def prefill(self, idx, state):
        """Parallel path from a state: idx (B, T) -> logits (B, T, V) and the state after the last token."""
        x, pos = self._embed(idx, state["pos"])
        layers = []
        for block, layer in zip(self.transformer.h, state["layers"]):
            x, layer = block(x, layer, pos)
            layers.append(layer)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, {"pos": state["pos"] + idx.size(1), "layers": layers}

    def step(self, idx_t, state):
        """Recurrent path: one token per sequence, idx_t (B,) -> logits (B, V) and the next state."""
        x, pos = self._embed(idx_t.unsqueeze(1), state["pos"])
        x = x.squeeze(1)
        layers = []
        for block, layer in zip(self.transformer.h, state["layers"]):
            x, layer = block.step(x, layer, pos)
            layers.append(layer)
        logits = self.lm_head(self.transformer.ln_f(x))
        return logits, {"pos": state["pos"] + 1, "layers": layers}

    @torch.no_grad()
    def generate(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None,
                 **cache_options):
        """Prefill the prompt idx (B, T) in parallel, then sample max_new_tokens one step at a time."""
        new = [t for t, _ in self.stream(idx, max_new_tokens, temperature, top_k, top_p, generator, **cache_options)]
        return torch.cat([idx, *new], dim=1)

    @torch.no_grad()
    def stream(self, idx, max_new_tokens, temperature=1.0, top_k=None, top_p=None, generator=None,
               **cache_options):
        """Like generate, but yields each new token (B, 1) as soon as it is sampled, together with the state it was
        sampled from (the state after the prompt and the tokens before it)."""
        if idx.size(1) < 1:
            raise ValueError("generation needs a prompt of at least one token")
        total = idx.size(1) + max_new_tokens
        if self.learned_positions and total > self.config.block_size:
            raise ValueError(f"the GPT can hold at most block_size={self.config.block_size} tokens (its positions "
                             f"are learned), but prompt + max_new_tokens = {total}; ask for fewer tokens, or "
                             f"train with pos='rope'")
        logits, state = self.prefill(idx, self.init_state(idx.size(0), **cache_options))
        logits = logits[:, -1]
        for i in range(max_new_tokens):
            idx_next = sample_logits(logits, temperature, top_k, top_p, generator)  # (B, 1)
            yield idx_next, state
            if i + 1 < max_new_tokens:
                logits, state = self.step(idx_next.squeeze(1), state)

    def configure_optimizers(self, optimizer, weight_decay, learning_rate, betas, device_type):
        """A list of optimizers that together cover every parameter, AdamW first, each group's "lr" set by train.py
        every step (the AdamW part's at adamw_lr_scale times Muon's).
        adamw: AdamW on everything. muon: Muon (Jordan et al. 2024, torch.optim.Muon) on the blocks' 2-D weight
        matrices, their updates orthogonalised, at AdamW's learning rate (match_rms_adamw scales each update to
        AdamW's typical RMS); AdamW on the rest: embeddings, lm_head, biases, norm gains, convs, Mamba's A, D."""
        if optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {optimizer!r}; choose one of {', '.join(OPTIMIZERS)}")
        if optimizer == "muon" and muon_missing():
            raise ValueError(muon_missing())
        params = [(n, p) for n, p in self.named_parameters() if p.requires_grad]
        muon = [optimizer == "muon" and n.startswith("transformer.h.") and p.dim() == 2 and not n.endswith("A_log")
                for n, p in params]
        rest = [(n, p) for (n, p), m in zip(params, muon) if not m]
        # matrices and embeddings decay; biases, norm gains and Mamba's A (a decay rate, not a weight) don't
        decay = [p.dim() >= 2 and not n.endswith("A_log") for n, p in rest]
        groups = [{"params": [p for (_, p), d in zip(rest, decay) if d], "weight_decay": weight_decay},
                  {"params": [p for (_, p), d in zip(rest, decay) if not d], "weight_decay": 0.0}]
        # one fused kernel for all the parameters (CUDA's, and the CPU's since PyTorch 2.4: 3-4x faster there than
        # the loop over parameters at the CPU recipe's sizes); other devices loop
        out = [torch.optim.AdamW(groups, lr=learning_rate, betas=betas, fused=device_type in ("cuda", "cpu"))]
        if any(muon):
            out.append(torch.optim.Muon([p for (_, p), m in zip(params, muon) if m], lr=learning_rate,
                                        weight_decay=weight_decay, adjust_lr_fn="match_rms_adamw"))
        return out

    def flops_per_token(self, T=None):
        """Training FLOPs per token (forward + backward), PaLM appendix B style: 6N plus the mixer's own work."""
        c = self.config
        T = T or c.block_size
        if c.mixer == "attn":
            mixer = 12 * c.n_layer * c.n_embd * T  # attention scores and weighted sum
        else:
            # a handful of elementwise ops per state entry, fwd + bwd
            mixer = 3 * 10 * c.n_layer * c.hidden * (c.d_state if c.mixer == "mamba" else 1)
        return 6 * self.get_num_params() + mixer

    def estimate_mfu(self, fwdbwd_per_iter, dt, peak_flops=None):
        """Model FLOPs utilisation as a fraction of peak; None where the peak is unknown (CPUs, unlisted GPUs)."""
        if peak_flops is None:
            peak_flops = _cuda_peak_bf16_flops(self.lm_head.weight.device)
        if peak_flops is None or dt <= 0:
            return None
        flops = self.flops_per_token() * self.config.block_size * fwdbwd_per_iter
        return flops / dt / peak_flops


def _cuda_peak_bf16_flops(device):
    if device.type != "cuda":
        return None
    name = torch.cuda.get_device_name(device)
    for key, peak in (("H200", 989e12), ("H100", 989e12), ("A100", 312e12), ("L4", 121e12), ("A10", 125e12)):
        if key in name:
            return peak
    return None


def sample_logits(logits, temperature=1.0, top_k=None, top_p=None, generator=None):
    """Draw one token per row from logits (B, V) -> (B, 1). temperature 0 is greedy."""
    if temperature == 0:
        return logits.argmax(dim=-1, keepdim=True)
    # float64, with the max shifted to 0 first: a tiny temperature then sends the others towards -inf instead of
    # overflowing to inf (temperature 1e-200 is not 0 in float64, but would be in float32)
    logits = logits.double()
    logits = (logits - logits.max(dim=-1, keepdim=True).values) / temperature
    if top_k is not None:
        v, _ = torch.topk(logits, min(top_k, logits.size(-1)))
        logits = logits.masked_fill(logits < v[:, [-1]], float("-inf"))
    if top_p is not None and top_p < 1.0:
        # nucleus: keep the smallest set of tokens whose probability reaches top_p (the top token always stays)
        sorted_logits, order = torch.sort(logits, descending=True)
        cum = F.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        drop = cum - F.softmax(sorted_logits, dim=-1) >= top_p
        logits = logits.masked_fill(drop.scatter(-1, order, drop), float("-inf"))
    probs = F.softmax(logits, dim=-1)
    return torch.multinomial(probs, num_samples=1, generator=generator)


def state_nbytes(state):
    """Bytes held by a recurrent state: the hidden vectors and conv tails, or the KV cache's tensors."""
    total = 0
    for layer in state["layers"]:
        for key, value in layer.items():
            tensors = value.tensors() if key == "kv" else [value]
            total += sum(t.numel() * t.element_size() for t in tensors)
    return total
