"""The model's parallel path against its recurrent path, causality, and a few optimisation steps."""
import pytest
import torch

from kernels import build
from model import GPT, INITS, MIXERS, GPTConfig, sample_logits, state_nbytes

VOCAB, BLOCK = 11, 24
# the recipe options (model.py's norm, init, bias, mlp_ratio) change what the parallel and step paths compute
# alike, so every mixer is checked with the defaults and with each non-default option
RECIPES = {"default": {}, "rms-torch-nobias": {"norm": "rmsnorm", "init": "torch", "bias": False, "mlp_ratio": 2.5,
                                               "tie_embeddings": False},
           "mamba": {"init": "mamba"},
           # the modern options (the GPT's RoPE and QK-norm; the MLP's squared ReLU for every mixer)
           "modern": {"activation": "relu2", "pos": "rope", "qk_norm": True}}
CASES = [(mixer, conv) for mixer in MIXERS for conv in (0, 3)]
RECIPE_CASES = [(mixer, conv, recipe) for mixer, conv in CASES for recipe in RECIPES]


@pytest.fixture(params=["kernels", "definition"])
def path(request, monkeypatch):
    """What runs the parallel path on a CPU: "kernels", cpu.c's cells and conv where they check out against model.py
    (as shipped, they do), and "definition", model.py's own ops (C_KERNELS=0)."""
    monkeypatch.setattr(build, "USE_C", request.param == "kernels")
    return request.param


def close(got, want, what):
    """assert_close in float64, with a failure message that names the mixer, the path and what disagrees."""
    torch.testing.assert_close(got, want, rtol=1e-10, atol=1e-10, msg=lambda m: f"{what}:\n{m}")


def tiny(mixer, conv=0, recipe="default", **kw):
    torch.manual_seed(0)
    cfg = {"block_size": BLOCK, "vocab_size": VOCAB, "n_layer": 2, "n_head": 2, "n_embd": 16, "dropout": 0.0,
           "bias": True, "mixer": mixer, "conv": conv, "expansion": 1.5, **RECIPES[recipe]}
    if mixer != "attn":  # positions and QK-norm are attention's: an RNN config refuses them
        cfg.pop("pos", None), cfg.pop("qk_norm", None)
    cfg.update(kw)
    return GPT(GPTConfig(**cfg)).double().eval()


def tokens(B, T, seed=1):
    return torch.randint(0, VOCAB, (B, T), generator=torch.Generator().manual_seed(seed))


def parallel_logits(model, idx):
    logits, _ = model(idx, targets=torch.zeros_like(idx))
    return logits


def stepped_logits(model, idx, state=None):
    state = model.init_state(idx.size(0)) if state is None else state
    out = []
    for t in range(idx.size(1)):
        logits, state = model.step(idx[:, t], state)
        out.append(logits)
    return torch.stack(out, dim=1), state


def assert_states_equal(a, b):
    assert a["pos"] == b["pos"]
    for la, lb in zip(a["layers"], b["layers"]):
        assert la.keys() == lb.keys()
        for key in la:
            if key == "kv":
                torch.testing.assert_close(la[key].k, lb[key].k, rtol=1e-10, atol=1e-10)
                torch.testing.assert_close(la[key].v, lb[key].v, rtol=1e-10, atol=1e-10)
                assert torch.equal(la[key].pos, lb[key].pos)
            else:
                torch.testing.assert_close(la[key], lb[key], rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("mixer,conv,recipe", RECIPE_CASES)
def test_parallel_matches_step_by_step(mixer, conv, recipe, path):
    model = tiny(mixer, conv, recipe)
    idx = tokens(3, 19)
    stepped, _ = stepped_logits(model, idx)
    close(parallel_logits(model, idx), stepped, f"{mixer} (conv {conv}, {recipe}): forward on the {path} path != step")


@pytest.mark.parametrize("mixer,conv,recipe", RECIPE_CASES)
def test_prompt_then_step_at_every_split(mixer, conv, recipe, path):
    model = tiny(mixer, conv, recipe)
    idx = tokens(2, 13)
    full = parallel_logits(model, idx)
    case = f"{mixer} (conv {conv}, {recipe}, {path} path)"
    for split in range(1, idx.size(1)):
        logits, state = model.prefill(idx[:, :split], model.init_state(2))
        close(logits, full[:, :split], f"{case}: prefill of {split} tokens != forward")
        rest, _ = stepped_logits(model, idx[:, split:], state)
        close(rest, full[:, split:], f"{case}: step after a prefill of {split} tokens != forward")


@pytest.mark.parametrize("mixer,conv,recipe", RECIPE_CASES)
def test_two_chunks_with_carried_state_match_one_pass(mixer, conv, recipe, path):
    model = tiny(mixer, conv, recipe)
    idx = tokens(2, 21)
    one, state_one = model.prefill(idx, model.init_state(2))
    a, state = model.prefill(idx[:, :8], model.init_state(2))
    b, state_two = model.prefill(idx[:, 8:], state)
    close(torch.cat([a, b], dim=1), one, f"{mixer} (conv {conv}, {recipe}, {path} path): two prefills != one")
    assert_states_equal(state_two, state_one)
    # and the stepped state after the same tokens is the same state
    _, state_step = stepped_logits(model, idx)
    assert_states_equal(state_step, state_one)


@pytest.mark.parametrize("mixer,conv", CASES)
def test_causality(mixer, conv):
    model = tiny(mixer, conv)
    idx = tokens(1, 17)
    base = parallel_logits(model, idx)
    for j in (0, 5, 16):
        changed = idx.clone()
        changed[0, j] = (changed[0, j] + 1) % VOCAB
        out = parallel_logits(model, changed)
        torch.testing.assert_close(out[:, :j], base[:, :j], rtol=0, atol=0)
        assert not torch.allclose(out[:, j], base[:, j])  # the change is seen from its own position on


@pytest.mark.parametrize("mixer", MIXERS)
def test_a_few_steps_reduce_the_loss(mixer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=16, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=32, mixer=mixer, conv=2))
    opt, = model.configure_optimizers("adamw", 0.1, 1e-2, (0.9, 0.99), "cpu")
    data = tokens(8, 17, seed=3)
    x, y = data[:, :-1], data[:, 1:]
    losses = []
    for _ in range(40):
        _, loss = model(x, y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.7 * losses[0]


def test_forward_without_targets_returns_last_position_only():
    model = tiny("mingru")
    idx = tokens(2, 9)
    logits, loss = model(idx)
    assert loss is None and logits.shape == (2, 1, VOCAB)
    torch.testing.assert_close(logits[:, 0], parallel_logits(model, idx)[:, -1])


@pytest.mark.parametrize("mixer", ["mingru", "minlstm", "mamba"])
def test_rnn_state_is_constant_size_and_runs_past_block_size(mixer):
    model = tiny(mixer, conv=3)
    state = model.init_state(2)
    size = state_nbytes(state)
    idx = tokens(2, BLOCK)
    _, state = model.prefill(idx, state)
    for t in range(2 * BLOCK):
        logits, state = model.step(idx[:, t % BLOCK], state)
        assert state_nbytes(state) == size
    assert torch.isfinite(logits).all() and state["pos"] == 3 * BLOCK
    out = model.generate(idx[:, :3], max_new_tokens=2 * BLOCK)
    assert out.shape == (2, 3 + 2 * BLOCK)


def test_gpt_refuses_to_go_past_block_size():
    model = tiny("attn")
    with pytest.raises(ValueError, match="block_size"):
        model.generate(tokens(1, 4), max_new_tokens=BLOCK)
    with pytest.raises(ValueError, match="block_size"):
        model(tokens(1, BLOCK + 1))


def test_rope_gpt_sees_distances_only_and_runs_past_block_size():
    model = tiny("attn", pos="rope", n_layer=1)
    assert not hasattr(model.transformer, "wpe")  # no position table
    idx = tokens(2, 7)
    want = parallel_logits(model, idx)
    # the same tokens at positions 30..36 (past block_size = 24): every query-key distance is the same, so the same
    # logits (learned positions would differ, and refuse)
    state = model.init_state(2)
    state["pos"] = 30
    got, _ = model.prefill(idx, state)
    close(got, want, "rope at an offset")
    # a window cache of 5 stepped to 3 x block_size: at each step exactly attention over the 5 cached tokens and the
    # new one, each at its original position (one layer, so the cached keys depend on their own token only)
    long = tokens(1, 3 * BLOCK, seed=4)
    state = model.init_state(1, policy="window", size=5)
    for t in range(long.size(1)):
        logits, state = model.step(long[:, t], state)
        if t >= 5 and t % 7 == 0:
            close(logits, parallel_logits(model, long[:, t - 5:t + 1])[:, -1], f"window step at {t}")
    assert state["pos"] == 3 * BLOCK
    assert model.generate(idx[:1, :3], max_new_tokens=2 * BLOCK).shape == (1, 3 + 2 * BLOCK)


def test_rope_turns_queries_and_keys_by_their_positions():
    from model import rotate
    x = torch.randn(1, 1, 3, 4, dtype=torch.float64)
    pos = torch.tensor([0, 1, 5])
    got = rotate(x, pos)
    # pairs (0, 2) at angle p and (1, 3) at angle p / 100 (theta_i = 10000^(-i / 2) for head size 4)
    for t, p in enumerate(pos.tolist()):
        for i, angle in ((0, p), (1, p / 100)):
            c, s = torch.cos(torch.tensor(angle, dtype=torch.float64)), torch.sin(torch.tensor(angle,
                                                                                             dtype=torch.float64))
            a, b = x[0, 0, t, i], x[0, 0, t, i + 2]
            close(got[0, 0, t, i], a * c - b * s, "first of the pair")
            close(got[0, 0, t, i + 2], a * s + b * c, "second of the pair")


def test_muon_takes_the_blocks_matrices_and_adamw_the_rest():
    for mixer in MIXERS:
        model = tiny(mixer, conv=3, tie_embeddings=False)
        adamw, muon = model.configure_optimizers("muon", 0.1, 1e-3, (0.9, 0.95), "cpu")
        assert isinstance(muon, torch.optim.Muon) and isinstance(adamw, torch.optim.AdamW)
        names = {id(p): n for n, p in model.named_parameters()}
        in_muon = {names[id(p)] for group in muon.param_groups for p in group["params"]}
        in_adamw = {names[id(p)] for group in adamw.param_groups for p in group["params"]}
        assert in_muon | in_adamw == set(names.values()) and not in_muon & in_adamw  # each parameter once
        assert in_muon == {n for n, p in model.named_parameters()
                           if n.startswith("transformer.h.") and p.dim() == 2 and not n.endswith("A_log")}
        assert {"lm_head.weight", "transformer.wte.weight"} <= in_adamw
        assert all(group["weight_decay"] == 0.1 for group in muon.param_groups)
    only, = tiny("attn").configure_optimizers("adamw", 0.1, 1e-3, (0.9, 0.95), "cpu")
    assert isinstance(only, torch.optim.AdamW)
    with pytest.raises(ValueError, match="unknown optimizer 'sgd'"):
        tiny("attn").configure_optimizers("sgd", 0.1, 1e-3, (0.9, 0.95), "cpu")


@pytest.mark.parametrize("mixer", MIXERS)
def test_generate_equals_sampling_from_full_forward_passes(mixer):
    model = tiny(mixer, conv=2)
    prompt = tokens(2, 5)
    out = model.generate(prompt, max_new_tokens=10, top_k=5, generator=torch.Generator().manual_seed(7))
    gen, idx = torch.Generator().manual_seed(7), prompt
    for _ in range(10):
        logits, _ = model(idx)
        idx = torch.cat([idx, sample_logits(logits[:, -1], 1.0, 5, None, gen)], dim=1)
    assert torch.equal(out, idx)


def test_cache_options_are_for_the_gpt_only():
    with pytest.raises(ValueError, match="KV cache only"):
        tiny("mingru").init_state(1, policy="window", size=4)


@pytest.mark.parametrize("bad,match", [
    ({"mixer": "lstm"}, "unknown mixer"),
    ({"n_embd": 30, "n_head": 4}, "divisible"),
    ({"block_size": 0}, "block_size"),
    ({"conv": -1}, "conv"),
    ({"init": "xavier"}, "unknown init 'xavier'; choose one of gpt2, torch, mamba"),
    ({"norm": "batchnorm"}, "unknown norm 'batchnorm'; choose one of layernorm, rmsnorm"),
    ({"mlp_ratio": 0.0}, "mlp_ratio"),
    ({"pos": "alibi"}, "unknown pos 'alibi'; choose one of learned, rope"),
    ({"activation": "swish"}, "unknown activation 'swish'"),
    ({"pos": "rope", "n_embd": 6, "n_head": 2}, "head size .* must be even"),
    ({"mixer": "mingru", "qk_norm": True}, "pos and qk_norm configure attention"),
    ({"mixer": "mamba", "pos": "rope"}, "pos and qk_norm configure attention"),
])
def test_config_errors_name_the_problem(bad, match):
    cfg = {"block_size": 8, "vocab_size": VOCAB, "n_layer": 1, "n_head": 2, "n_embd": 16}
    cfg.update(bad)
    with pytest.raises(ValueError, match=match):
        GPTConfig(**cfg)


def test_sample_logits_greedy_top_k_and_top_p():
    logits = torch.tensor([[0.0, 3.0, 1.0, 2.9]])
    assert sample_logits(logits, temperature=0).item() == 1
    gen = torch.Generator().manual_seed(0)
    draws = {sample_logits(logits, top_k=2, generator=gen).item() for _ in range(200)}
    assert draws == {1, 3}
    draws = {sample_logits(logits, top_k=100, top_p=0.01, generator=gen).item() for _ in range(50)}
    assert draws == {1}


def test_top_p_keeps_the_smallest_set_that_reaches_it():
    """Nucleus sampling on (0.5, 0.3, 0.2): the token that crosses top_p stays in."""
    logits = torch.tensor([[0.5, 0.3, 0.2]], dtype=torch.float64).log()
    gen = torch.Generator().manual_seed(0)
    for top_p, keep in ((0.7, {0, 1}), (0.5, {0}), (0.4, {0}), (0.9, {0, 1, 2})):
        draws = {sample_logits(logits, top_p=top_p, top_k=None, generator=gen).item() for _ in range(400)}
        assert draws == keep, (top_p, draws)


def test_rmsnorm_is_its_formula():
    from model import RMSNorm
    norm = RMSNorm(8)
    x = 10 * torch.randn(5, 8, dtype=torch.float64)
    y = norm.double()(x)
    torch.testing.assert_close(y.pow(2).mean(dim=-1).sqrt(), torch.ones(5, dtype=torch.float64), rtol=1e-6, atol=0)
    with torch.no_grad():
        norm.weight.copy_(torch.arange(1.0, 9.0))
    torch.testing.assert_close(norm(x), x / x.pow(2).mean(dim=-1, keepdim=True).add(1e-5).sqrt() * norm.weight)


def test_blocks_without_mlp_still_match_step_by_step():
    model = tiny("minlstm", mlp=False)
    assert not any("mlp" in name for name, _ in model.named_parameters())
    idx = tokens(2, 9)
    stepped, _ = stepped_logits(model, idx)
    torch.testing.assert_close(parallel_logits(model, idx), stepped, rtol=1e-10, atol=1e-10)


def weight(model, suffix):
    return dict(model.named_parameters())[f"transformer.h.0.{suffix}"]


@pytest.mark.parametrize("mixer", MIXERS)
@pytest.mark.parametrize("init", INITS)
def test_init_schemes_set_the_scales_they_name(mixer, init):
    L, C = 3, 64
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=VOCAB, n_layer=L, n_head=2, n_embd=C, mixer=mixer, init=init))
    mixer_in = weight(model, {"attn": "mixer.c_attn.weight", "mamba": "mixer.in_proj.weight"}.get(mixer,
                                                                                             "mixer.c_fc.weight"))
    proj, emb = weight(model, "mixer.c_proj.weight"), model.transformer.wte.weight
    default = 1 / (3 * C) ** 0.5  # the std of PyTorch's Linear init, uniform in +-1/sqrt(fan_in)
    default_proj = 1 / (3 * proj.size(1)) ** 0.5
    depth = (2 * L) ** -0.5  # the residual projections' scale in gpt2 and mamba
    want = {"gpt2": (0.02, 0.02 * depth, 0.02),
            "torch": (default, default_proj, default),  # the tied embedding is lm_head's Linear init
            "mamba": (default, default_proj * depth, 0.02)}[init]
    got = (mixer_in.std().item(), proj.std().item(), emb.std().item())
    assert got == pytest.approx(want, rel=0.1)
    if init != "gpt2":  # uniform, as PyTorch's default, never past its bound
        assert proj.abs().max().item() <= want[1] * 3 ** 0.5 + 1e-7
    # every bias starts at zero but Mamba's Delta bias, which sets its initial step (test_mamba_init_and_state_shapes)
    assert all((p == 0).all() for n, p in model.named_parameters()
               if n.endswith("bias") and ".ln_" not in n and not n.endswith("dt_proj.bias"))


def test_shapes_at_equal_parameter_count():
    """The recipe's wider-RNN, narrower-MLP shapes keep each block at 12 C^2 weights, as the GPT's."""
    base = dict(block_size=8, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=48, bias=False)
    shapes = [{"mixer": "attn"}, {"mixer": "mingru", "expansion": 4 / 3}, {"mixer": "minlstm"},
              {"mixer": "mingru", "expansion": 2.0, "mlp_ratio": 3.0},
              {"mixer": "minlstm", "expansion": 2.0, "mlp_ratio": 2.0}]
    counts = [GPT(GPTConfig(**base, **shape)).get_num_params() for shape in shapes]
    assert len(set(counts)) == 1, counts


def test_mixers_step_follows_the_papers_equations_written_out():
    """The paper's Sections 3.1 and 3.2 by hand on fixed weights: catches a mistake made in both paths at once
    (z swapped with 1 - z, a missing normalisation), which the parallel == step tests cannot see."""
    from model import MinGRU, MinLSTM
    C, H = 3, 2
    torch.manual_seed(0)
    x, h_prev = torch.randn(4, C, dtype=torch.float64), torch.rand(4, H, dtype=torch.float64)

    def g_by_hand(v):  # Appendix B
        return torch.where(v >= 0, v + 0.5, 1 / (1 + torch.exp(-v)))

    gru = MinGRU(GPTConfig(n_embd=C, n_head=1, expansion=H / C, mixer="mingru")).double()
    W = gru.c_fc.weight
    k_z, k_h = x @ W[:H].T + gru.c_fc.bias[:H], x @ W[H:].T + gru.c_fc.bias[H:]
    z = 1 / (1 + torch.exp(-k_z))
    want = (1 - z) * h_prev + z * g_by_hand(k_h)  # h_t = (1 - z_t) h_{t-1} + z_t h~_t
    _, h = gru.step(x, h_prev)
    torch.testing.assert_close(h, want, rtol=1e-12, atol=1e-12,
                               msg="minGRU's step is not Section 3.1's h = (1 - z) h + z g(h~) (check g and the gate)")
    _, h_par = gru(x.unsqueeze(1), h_prev)
    torch.testing.assert_close(h_par, want, rtol=1e-12, atol=1e-12, msg="minGRU's forward is not Section 3.1's")

    lstm = MinLSTM(GPTConfig(n_embd=C, n_head=1, expansion=H / C, mixer="minlstm")).double()
    W, b = lstm.c_fc.weight, lstm.c_fc.bias
    f, i = (1 / (1 + torch.exp(-(x @ W[j * H:(j + 1) * H].T + b[j * H:(j + 1) * H]))) for j in (0, 1))
    h_tilde = g_by_hand(x @ W[2 * H:].T + b[2 * H:])
    want = f / (f + i) * h_prev + i / (f + i) * h_tilde  # f' = f / (f + i), i' = i / (f + i)
    _, h = lstm.step(x, h_prev)
    msg = "minLSTM's {} is not Section 3.2's h = f' h + i' g(h~) with f' = f / (f + i), i' = i / (f + i)"
    torch.testing.assert_close(h, want, rtol=1e-12, atol=1e-12, msg=msg.format("step"))
    # and the parallel path from the same h_{t-1}
    _, h_par = lstm(x.unsqueeze(1), h_prev)
    torch.testing.assert_close(h_par, want, rtol=1e-12, atol=1e-12, msg=msg.format("forward"))


def test_mamba_step_follows_the_selective_ssm_written_out():
    """Mamba's block by hand (Gu & Dao 2023, Algorithm 2 and Section 3.4) on fixed weights, per channel d and state
    index n, with explicit loops: the conv over the last k inputs, SiLU, Delta = softplus(dt_proj(x_proj(x)[:R])),
    h[d, n] = exp(Delta[d] A[d, n]) h[d, n] + Delta[d] B[n] x[d], y[d] = sum_n C[n] h[d, n] + D[d] x[d], y * SiLU(z),
    then out. Then the parallel path over the same two tokens."""
    from model import Mamba
    C, H, N, k = 4, 3, 2, 3
    cfg = GPTConfig(n_embd=C, n_head=1, expansion=H / C, mixer="mamba", d_state=N, conv=k)
    torch.manual_seed(0)
    mamba = Mamba(cfg).double()
    with torch.no_grad():
        for p in mamba.parameters():  # every parameter random, so that no term can hide behind a zero or a one
            p.copy_(torch.randn_like(p) * 0.5)
    x = torch.randn(2, C, dtype=torch.float64)  # two tokens of one sequence
    h0, tail0 = torch.randn(1, H, N, dtype=torch.float64), torch.randn(1, k - 1, H, dtype=torch.float64)

    def silu(v):
        return v / (1 + torch.exp(-v))

    W_in, W_x, W_dt, b_dt = mamba.in_proj.weight, mamba.x_proj.weight, mamba.dt_proj.weight, mamba.dt_proj.bias
    R, A = mamba.dt_rank, -torch.exp(mamba.A_log)
    conv_w, conv_b = mamba.conv.conv.weight[:, 0], mamba.conv.conv.bias  # (H, k), (H,)
    inputs, h, outs = list(tail0[0]), h0[0].clone(), []
    for t in range(2):
        xz = W_in @ x[t] + mamba.in_proj.bias
        inputs.append(xz[:H])
        u = silu(torch.stack([sum(conv_w[d, j] * inputs[-k + j][d] for j in range(k)) + conv_b[d] for d in range(H)]))
        proj = W_x @ u
        delta = torch.log1p(torch.exp(W_dt @ proj[:R] + b_dt))  # softplus
        Bt, Ct = proj[R:R + N], proj[R + N:]
        y = torch.empty(H, dtype=torch.float64)
        for d in range(H):
            for n in range(N):
                h[d, n] = torch.exp(delta[d] * A[d, n]) * h[d, n] + delta[d] * Bt[n] * u[d]
            y[d] = sum(Ct[n] * h[d, n] for n in range(N)) + mamba.D[d] * u[d]
        outs.append(mamba.c_proj.weight @ (y * silu(xz[H:])) + mamba.c_proj.bias)
    want = torch.stack(outs)
    state, tail, stepped = h0, tail0, []
    for t in range(2):
        y, state, tail = mamba.step(x[t:t + 1], state, tail)
        stepped.append(y[0])
    msg = ("Mamba's {} is not Algorithm 2 written out: the conv, SiLU, Delta = softplus(.), "
           "h = exp(Delta A) h + Delta B x, y = C . h + D x (the D skip), y * SiLU(z)")
    torch.testing.assert_close(torch.stack(stepped), want, rtol=1e-12, atol=1e-12, msg=msg.format("step"))
    torch.testing.assert_close(state[0], h, rtol=1e-12, atol=1e-12, msg=msg.format("step's state"))
    y_par, h_par, tail_par = mamba(x.unsqueeze(0), h0, tail0)
    torch.testing.assert_close(y_par[0], want, rtol=1e-12, atol=1e-12, msg=msg.format("forward"))
    torch.testing.assert_close(h_par[0], h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(tail_par, tail, rtol=1e-12, atol=1e-12)


def test_mamba_init_and_state_shapes():
    L, C, N = 2, 32, 8
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=8, vocab_size=VOCAB, n_layer=L, n_head=2, n_embd=C, mixer="mamba",
                          expansion=2.0, d_state=N, conv=4, init="gpt2"))
    mamba = model.transformer.h[0].mixer
    # Mamba's own init survives whatever config.init does to the Linears: S4D-real A, D = 1, Delta in [1e-3, 0.1]
    torch.testing.assert_close(-torch.exp(mamba.A_log), -torch.arange(1.0, N + 1).expand(2 * C, N))
    assert (mamba.D == 1).all()
    dt = torch.nn.functional.softplus(mamba.dt_proj.bias)
    assert dt.min() >= 1e-3 * 0.999 and dt.max() <= 0.1 * 1.001 and dt.std() > 0
    # A is a decay rate, not a weight: no weight decay on it (nor on D, a vector)
    opt, = model.configure_optimizers("adamw", 0.1, 1e-3, (0.9, 0.99), "cpu")
    no_decay = {id(p) for group in opt.param_groups if group["weight_decay"] == 0 for p in group["params"]}
    assert id(mamba.A_log) in no_decay and id(mamba.D) in no_decay and id(mamba.in_proj.weight) not in no_decay
    state = model.init_state(3)
    assert [tuple(layer["h"].shape) for layer in state["layers"]] == [(3, 2 * C, N)] * L
    assert [tuple(layer["conv"].shape) for layer in state["layers"]] == [(3, 3, 2 * C)] * L
    assert state_nbytes(state) == L * 3 * (2 * C * N + 3 * 2 * C) * 4


def test_minlstm_step_is_finite_when_both_gates_saturate():
    from model import MinLSTM
    lstm = MinLSTM(GPTConfig(n_embd=2, n_head=1, mixer="minlstm"))
    with torch.no_grad():
        lstm.c_fc.weight.zero_()
        lstm.c_fc.bias.copy_(torch.tensor([-120.0, -120.0, -120.0, -100.0, 1.0, 1.0]))  # f, i underflow to 0
    x, h_prev = torch.zeros(1, 2), torch.tensor([[0.3, -0.7]])
    _, h = lstm.step(x, h_prev)
    _, h_par = lstm(x.unsqueeze(1), h_prev)
    assert torch.isfinite(h).all()
    torch.testing.assert_close(h, h_par)
    # equal logits: f' = i' = 1/2; i 20 nats above f: i' ~ 1
    torch.testing.assert_close(h, torch.tensor([[0.5 * 0.3 + 0.5 * 1.5, 1.5]]), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("mixer", MIXERS)
def test_torch_compile_traces_each_mixer_without_graph_breaks(mixer):
    """One graph per compiled shape, also when T changes and the compiler treats it as symbolic (a break would
    split forward and backward into pieces and lose most of what compiling buys)."""
    import torch._dynamo
    from torch._dynamo.utils import counters
    torch._dynamo.reset()
    counters.clear()
    torch.manual_seed(0)
    model = torch.compile(GPT(GPTConfig(block_size=64, vocab_size=11, n_layer=1, n_head=2, n_embd=16, mixer=mixer,
                                        conv=3)), backend="eager")  # dynamo alone: no C++ compiler needed
    for T in (64, 32, 48):
        idx = torch.randint(0, 11, (2, T))
        _, loss = model(idx, idx)
        loss.backward()
    assert dict(counters["graph_break"]) == {}
    torch._dynamo.reset()


@pytest.mark.parametrize("bias", [True, False])
@pytest.mark.parametrize("kernel", [1, 4])
def test_causal_conv_is_torchs_depthwise_conv(bias, kernel):
    # CausalConv computes the depthwise conv as k shifted multiply-adds; nn.Conv1d on the left-padded input is the
    # same function, in values and gradients
    from model import CausalConv
    torch.manual_seed(0)
    conv = CausalConv(6, kernel, bias).double()
    x = torch.randn(3, 10, 6, dtype=torch.float64, requires_grad=True)
    tail = torch.randn(3, kernel - 1, 6, dtype=torch.float64)
    for t in (None, tail):
        y, new_tail = conv(x, t)
        xp = torch.cat([torch.zeros_like(tail) if t is None else t, x], dim=1)
        ref = conv.conv(xp.transpose(1, 2)).transpose(1, 2)
        torch.testing.assert_close(y, ref, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(new_tail, xp[:, 10:])
        params = [x, *conv.parameters()]
        w = torch.randn_like(y)
        for g, r in zip(torch.autograd.grad((y * w).sum(), params), torch.autograd.grad((ref * w).sum(), params)):
            torch.testing.assert_close(g, r, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("init", INITS)
def test_untied_embeddings_are_a_second_matrix(init):
    tied, untied = tiny("mingru", init=init), tiny("mingru", init=init, tie_embeddings=False)
    assert tied.transformer.wte.weight is tied.lm_head.weight
    assert untied.transformer.wte.weight is not untied.lm_head.weight
    assert sum(p.numel() for p in untied.parameters()) == sum(p.numel() for p in tied.parameters()) + VOCAB * 16
    idx = tokens(2, 8)
    _, loss = untied(idx, idx)
    loss.backward()
    assert untied.transformer.wte.weight.grad.abs().sum() > 0 and untied.lm_head.weight.grad.abs().sum() > 0
