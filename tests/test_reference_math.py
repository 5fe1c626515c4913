"""The GPT's attention and MLP written out by hand on fixed weights, in float64, against model.py's parallel
forward and its cached step. A mistake that both paths share (QK-norm on the queries only, the tanh GELU, a wrong
softmax scale) passes the parallel == step tests in test_model.py; it fails these."""
import math

import pytest
import torch

from cache import LayerKV
from model import GPT, MLP, CausalSelfAttention, GPTConfig

EPS = torch.finfo(torch.float64).eps  # F.rms_norm's eps when given none: the dtype's machine epsilon


def close(got, want, what):
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=lambda m: f"{what}:\n{m}")


def randomize(module, std=0.5, seed=0):
    """Weights well away from the init's 0.02, so that queries and keys are far from unit RMS and the MLP's
    pre-activations span the range where GELU's tanh form departs from its erf form."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(std * torch.randn(p.shape, generator=gen, dtype=torch.float64))
    return module


def linear_by_hand(x, layer):
    return x @ layer.weight.T + (0 if layer.bias is None else layer.bias)


def rms_by_hand(t):
    # per head, no gain: t / sqrt(mean(t^2) + eps)
    return t / torch.sqrt((t * t).sum(dim=-1, keepdim=True) / t.size(-1) + EPS)


def rope_by_hand(t, positions):
    # t (B, nh, T, hs): channel i and i + hs/2 of the token at position p turn by the angle p * 10000^(-i / (hs/2))
    out, half = t.clone(), t.size(-1) // 2
    for j, p in enumerate(positions):
        for i in range(half):
            c, s = math.cos(p * 10000.0 ** (-i / half)), math.sin(p * 10000.0 ** (-i / half))
            a, b = t[:, :, j, i], t[:, :, j, i + half]
            out[:, :, j, i], out[:, :, j, i + half] = a * c - b * s, a * s + b * c
    return out


def attention_by_hand(attn, x, positions, rope, qk_norm):
    """x (B, T, C) at positions -> (B, T, C): q, k, v per head; QK-norm, then RoPE; each query t attends to the
    keys 0..t with softmax(q . k / sqrt(hs)); the heads side by side; the output projection."""
    B, T, C = x.shape
    nh = attn.n_head
    hs = C // nh
    qkv = linear_by_hand(x, attn.c_attn)  # (B, T, 3C): q, then k, then v, each head hs channels in turn

    def heads(part):  # (B, nh, T, hs)
        return torch.stack([qkv[:, :, part * C + h * hs:part * C + (h + 1) * hs] for h in range(nh)], dim=1)

    q, k, v = heads(0), heads(1), heads(2)
    if qk_norm:
        q, k = rms_by_hand(q), rms_by_hand(k)
    if rope:
        q, k = rope_by_hand(q, positions), rope_by_hand(k, positions)
    y = torch.zeros(B, T, C, dtype=x.dtype)
    for b in range(B):
        for h in range(nh):
            for t in range(T):
                scores = [float(q[b, h, t] @ k[b, h, j]) / math.sqrt(hs) for j in range(t + 1)]
                top = max(scores)
                weights = [math.exp(s - top) for s in scores]
                total = sum(weights)
                y[b, t, h * hs:(h + 1) * hs] = sum(w / total * v[b, h, j] for j, w in enumerate(weights))
    return linear_by_hand(y, attn.c_proj)


def gelu_by_hand(u):
    # GPT-2's GELU, the exact form: x * Phi(x) = x / 2 * (1 + erf(x / sqrt(2)))
    return torch.tensor([x / 2 * (1 + math.erf(x / math.sqrt(2))) for x in u.flatten().tolist()],
                        dtype=u.dtype).view(u.shape)


def relu2_by_hand(u):
    return torch.tensor([max(x, 0.0) ** 2 for x in u.flatten().tolist()], dtype=u.dtype).view(u.shape)


def mlp_by_hand(mlp, x, activation):
    act = gelu_by_hand if activation == "gelu" else relu2_by_hand
    return linear_by_hand(act(linear_by_hand(x, mlp.c_fc)), mlp.c_proj)


def norm_by_hand(norm, x, kind):
    if kind == "layernorm":
        mean = x.mean(dim=-1, keepdim=True)
        var = ((x - mean) ** 2).mean(dim=-1, keepdim=True)
        return (x - mean) / torch.sqrt(var + 1e-5) * norm.weight + (0 if norm.bias is None else norm.bias)
    return x / torch.sqrt((x * x).mean(dim=-1, keepdim=True) + 1e-5) * norm.weight


# (B, T, n_embd, n_head): one token, odd lengths, head sizes 2 to 8, one head and five
SHAPES = [(1, 1, 8, 2), (2, 7, 12, 2), (3, 13, 20, 5), (2, 9, 8, 1), (1, 6, 16, 8)]
ATTENTION = [(rope, qk_norm) for rope in (False, True) for qk_norm in (False, True)]


def attention(n_embd, n_head, rope, qk_norm, bias=True):
    config = GPTConfig(n_embd=n_embd, n_head=n_head, pos="rope" if rope else "learned", qk_norm=qk_norm, bias=bias)
    return randomize(CausalSelfAttention(config).double().eval())


@pytest.mark.parametrize("rope,qk_norm", ATTENTION)
@pytest.mark.parametrize("B,T,C,nh", SHAPES)
def test_attention_forward_and_cached_step_are_the_formula(B, T, C, nh, rope, qk_norm):
    attn = attention(C, nh, rope, qk_norm, bias=(T % 2 == 1))
    x = torch.randn(B, T, C, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    # a prompt that starts past 0, so that RoPE's angles are not the identity at the first token
    positions = list(range(3, 3 + T))
    pos = torch.tensor(positions)
    what = f"attention (rope={rope}, qk_norm={qk_norm}, B={B}, T={T}, C={C}, n_head={nh})"
    with torch.no_grad():
        want = attention_by_hand(attn, x, positions, rope, qk_norm)
        close(attn(x, None, pos), want, f"{what}: the parallel forward is not the formula")
        cache = LayerKV()
        stepped = torch.cat([attn(x[:, t:t + 1], cache, pos[t:t + 1]) for t in range(T)], dim=1)
    close(stepped, want, f"{what}: the cached step, token by token, is not the formula")


def test_qk_norm_is_per_head_without_a_gain_and_commutes_with_rope():
    """The normalised queries and keys have unit RMS in every head (no learnable gain to move them). RoPE turns
    pairs of channels, which keeps the RMS, so norm-then-RoPE equals RoPE-then-norm: the order is not a choice
    the test above could pin, nor one that changes the model."""
    attn = attention(12, 3, rope=True, qk_norm=True)
    assert not any("norm" in name for name, _ in attn.named_parameters())
    q = torch.randn(2, 3, 5, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(2)) * 7
    positions = [0, 1, 2, 10, 100]
    torch.testing.assert_close(rms_by_hand(q).pow(2).mean(dim=-1), torch.ones(2, 3, 5, dtype=torch.float64))
    close(rms_by_hand(rope_by_hand(q, positions)), rope_by_hand(rms_by_hand(q), positions), "norm and rope")


@pytest.mark.parametrize("activation", ["gelu", "relu2"])
@pytest.mark.parametrize("shape,n_embd,mlp_ratio", [((5, 8), 8, 4.0), ((2, 7, 6), 6, 2.5), ((1, 1, 3), 3, 3.0)])
def test_mlp_is_its_formula(activation, shape, n_embd, mlp_ratio):
    config = GPTConfig(n_embd=n_embd, n_head=1, mlp_ratio=mlp_ratio, activation=activation)
    mlp = randomize(MLP(config).double().eval(), std=1.0)
    x = 2 * torch.randn(shape, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    with torch.no_grad():
        pre = linear_by_hand(x, mlp.c_fc)
        assert pre.min() < -1.5 and pre.max() > 1.5  # GELU's tanh form departs from erf's by up to 5e-4 out here
        close(mlp(x), mlp_by_hand(mlp, x, activation), f"the MLP's {activation}")


def test_gelu_by_hand_is_the_erf_form_not_the_tanh_form():
    """The hand-written GELU above, at points where the two forms differ: it must be the exact one."""
    u = torch.tensor([-3.0, -1.5, -0.5, 0.0, 0.7, 2.0], dtype=torch.float64)
    tanh_form = 0.5 * u * (1 + torch.tanh(math.sqrt(2 / math.pi) * (u + 0.044715 * u ** 3)))
    assert (gelu_by_hand(u) - tanh_form).abs().max() > 1e-4
    torch.testing.assert_close(gelu_by_hand(u), u * 0.5 * (1 + torch.erf(u / math.sqrt(2))), rtol=1e-15, atol=1e-15)


def gpt_by_hand(model, idx):
    """The whole GPT by hand from its parameters: embeddings, then per block x + attn(norm(x)) and
    x + mlp(norm(x)), the final norm, the head. Logits (B, T, V)."""
    c = model.config
    T = idx.size(1)
    x = model.transformer.wte.weight[idx]
    if c.pos == "learned":
        x = x + model.transformer.wpe.weight[:T]
    for block in model.transformer.h:
        x = x + attention_by_hand(block.mixer, norm_by_hand(block.ln_1, x, c.norm), list(range(T)),
                                  c.pos == "rope", c.qk_norm)
        x = x + mlp_by_hand(block.mlp, norm_by_hand(block.ln_2, x, c.norm), c.activation)
    return norm_by_hand(model.transformer.ln_f, x, c.norm) @ model.lm_head.weight.T


@pytest.mark.parametrize("pos,qk_norm,activation,norm", [("learned", False, "gelu", "layernorm"),
                                                         ("rope", True, "relu2", "rmsnorm"),
                                                         ("rope", True, "gelu", "layernorm"),
                                                         ("learned", True, "relu2", "layernorm")])
def test_gpt_forward_and_step_are_the_formula(pos, qk_norm, activation, norm):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=13, n_layer=2, n_head=2, n_embd=12, dropout=0.0, pos=pos,
                          qk_norm=qk_norm, activation=activation, norm=norm)).double().eval()
    randomize(model, std=0.4)
    idx = torch.randint(0, 13, (2, 11), generator=torch.Generator().manual_seed(4))
    what = f"the GPT (pos={pos}, qk_norm={qk_norm}, activation={activation}, norm={norm})"
    with torch.no_grad():
        want = gpt_by_hand(model, idx)
        logits, _ = model(idx, targets=torch.zeros_like(idx))
        close(logits, want, f"{what}: forward is not the formula")
        state, stepped = model.init_state(2), []
        for t in range(idx.size(1)):
            out, state = model.step(idx[:, t], state)
            stepped.append(out)
    close(torch.stack(stepped, dim=1), want, f"{what}: step, token by token, is not the formula")
