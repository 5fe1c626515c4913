"""The edits a user makes to model.py, made the way a user would (replacing its definitions, here by monkeypatch), and
what must follow: the edit changes CPU training, every new parameter gets a gradient, the parallel path still equals
the step in float64, and where a C kernel no longer computes what model.py says it steps aside with one warning."""
import warnings

import pytest
import torch
from test_model import parallel_logits, stepped_logits
from torch import nn
from torch.nn import functional as F

import model as model_module
from kernels import build, fastpath
from model import GPT, MLP, GPTConfig, MinGRU, MinLSTM

VOCAB = 13
needs_c = pytest.mark.skipif(build.library(torch.float32) is None, reason="kernels/cpu.c could not be built here")


def config(mixer, **kw):
    return GPTConfig(block_size=24, vocab_size=VOCAB, n_layer=2, n_head=2, n_embd=16, mixer=mixer, **kw)


def train(mixer, steps=4, **kw):
    """A few AdamW steps on the CPU, float32 (what train.py runs): the model, its losses and the FastPathWarnings."""
    torch.manual_seed(0)
    model = GPT(config(mixer, **kw))
    opt, = model.configure_optimizers("adamw", 0.1, 3e-3, (0.9, 0.99), "cpu")
    data = torch.randint(0, VOCAB, (6, 25), generator=torch.Generator().manual_seed(1))
    losses = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for i in range(steps):
            _, loss = model(data[:, :-1], data[:, 1:])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if i == 0:  # every parameter a hack adds must be trained by something
                idle = [n for n, p in model.named_parameters() if p.grad is None]
                assert idle == [], f"{mixer}: parameters without a gradient: {idle}"
            opt.step()
            losses.append(loss.item())
    steps_aside = [str(w.message) for w in caught if issubclass(w.category, fastpath.FastPathWarning)]
    return model, losses, steps_aside


def assert_parallel_equals_step(mixer, **kw):
    torch.manual_seed(0)
    model = GPT(config(mixer, **kw)).double().eval()
    with torch.no_grad():
        for p in model.parameters():  # nothing hides behind a zero init
            p.add_(0.1 * torch.randn_like(p))
    idx = torch.randint(0, VOCAB, (2, 17), generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(parallel_logits(model, idx), stepped_logits(model, idx)[0], rtol=1e-10, atol=1e-10,
                               msg=lambda m: f"{mixer} after the hack: forward != step\n{m}")


@pytest.fixture(scope="module")
def baseline():
    """The unedited models' losses, and no warning: the shipped definitions run the C kernels."""
    runs = {mixer: train(mixer, conv=3) for mixer in ("mingru", "minlstm")}
    for _, _, steps_aside in runs.values():
        assert steps_aside == [], steps_aside
    return {mixer: losses for mixer, (_, losses, _) in runs.items()}


@needs_c
def test_shipped_cells_run_the_c_kernels(monkeypatch):
    from kernels import cells
    ran = []
    monkeypatch.setattr(cells, "cell", lambda name, kh, h0=None, _cell=cells.cell: ran.append(name) or
                        _cell(name, kh, h0))
    for mixer in ("mingru", "minlstm"):
        model = GPT(config(mixer))
        idx = torch.randint(0, VOCAB, (2, 24))
        model(idx, idx)  # the first forward may run the check, which calls the cell too
        ran.clear()
        model(idx, idx)
        assert ran == [mixer] * 2  # one call per layer


def test_hack_g_plain_sigmoid(baseline, monkeypatch):
    monkeypatch.setattr(model_module, "g", torch.sigmoid)
    _, losses, steps_aside = train("mingru", conv=3)
    assert losses != baseline["mingru"]  # the edit trains
    if build.library(torch.float32) is not None:
        assert len(steps_aside) == 1 and "mingru cell steps aside" in steps_aside[0]
    assert_parallel_equals_step("mingru", conv=3)
    assert_parallel_equals_step("minlstm")


def test_hack_learnable_gate_bias(baseline, monkeypatch):
    init = MinGRU.__init__

    def __init__(self, config):
        init(self, config)
        self.gate_bias = nn.Parameter(torch.zeros(self.hidden))

    def gates(self, kh):
        k, pre_h = kh.chunk(2, dim=-1)
        z = torch.sigmoid(k + self.gate_bias)
        return 1 - z, z * model_module.g(pre_h)

    monkeypatch.setattr(MinGRU, "__init__", __init__)
    monkeypatch.setattr(MinGRU, "gates", gates)
    model, losses, steps_aside = train("mingru", conv=3)
    assert losses != baseline["mingru"]
    assert all((block.mixer.gate_bias != 0).any() for block in model.transformer.h)  # it trained
    if build.library(torch.float32) is not None:
        assert len(steps_aside) == 1 and "gate_bias" in steps_aside[0]  # the kernel cannot give it a gradient
    assert_parallel_equals_step("mingru", conv=3)


def test_hack_minlstm_without_normalisation(baseline, monkeypatch):
    def gates(self, kh):
        f, i, pre_h = kh.chunk(3, dim=-1)
        return torch.sigmoid(f), torch.sigmoid(i) * model_module.g(pre_h)

    monkeypatch.setattr(MinLSTM, "gates", gates)
    _, losses, steps_aside = train("minlstm", conv=3)
    assert losses != baseline["minlstm"]
    if build.library(torch.float32) is not None:
        assert len(steps_aside) == 1 and "minlstm cell steps aside" in steps_aside[0]
    assert_parallel_equals_step("minlstm", conv=3)


def test_hack_swiglu_mlp(baseline, monkeypatch):
    def __init__(self, config):
        nn.Module.__init__(self)
        hidden = round(2 / 3 * config.mlp_hidden)
        self.c_fc = nn.Linear(config.n_embd, 2 * hidden, bias=config.bias)
        self.c_proj = nn.Linear(hidden, config.n_embd, bias=config.bias)

    def forward(self, x):
        gate, value = self.c_fc(x).chunk(2, dim=-1)
        return self.c_proj(F.silu(gate) * value)

    monkeypatch.setattr(MLP, "__init__", __init__)
    monkeypatch.setattr(MLP, "forward", forward)
    _, losses, steps_aside = train("mingru", conv=3)
    assert losses != baseline["mingru"] and steps_aside == []  # the cells are untouched: the kernels keep running
    assert_parallel_equals_step("mingru", conv=3)
    assert_parallel_equals_step("attn")


class MyRNN(nn.Module):
    """A new mixer, as a user would write one: a leaky integrator h_t = a_t h_{t-1} + (1 - a_t) tanh(v_t)."""

    def __init__(self, config):
        super().__init__()
        self.c_fc = nn.Linear(config.n_embd, 2 * config.hidden, bias=config.bias)
        self.c_proj = nn.Linear(config.hidden, config.n_embd, bias=config.bias)

    def gates(self, kh):
        k, v = kh.chunk(2, dim=-1)
        a = torch.sigmoid(k)
        return a, (1 - a) * torch.tanh(v)

    def forward(self, x, h0=None):
        h = model_module.scan_linear(*self.gates(self.c_fc(x)), h0)
        return self.c_proj(h.to(x.dtype)), h[:, -1]

    def step(self, x, h):
        a, b = self.gates(self.c_fc(x))
        h = a * h + b
        return self.c_proj(h), h


def test_hack_a_new_mixer(monkeypatch):
    monkeypatch.setitem(model_module.MIXERS, "myrnn", MyRNN)
    _, losses, steps_aside = train("myrnn", steps=30, conv=3)
    assert losses[-1] < 0.9 * losses[0] and steps_aside == []
    assert_parallel_equals_step("myrnn", conv=3)
    state = GPT(config("myrnn")).init_state(3)
    assert [tuple(layer["h"].shape) for layer in state["layers"]] == [(3, 16)] * 2


def test_train_names_a_parameter_that_gets_no_gradient(tmp_path, monkeypatch, capsys, char_dataset):
    """train.py, after the first backward: the hack's new parameter that nothing reads is named."""
    import train as train_module
    init = MinGRU.__init__

    def __init__(self, config):
        init(self, config)
        self.gate_bias = nn.Parameter(torch.zeros(self.hidden))  # added, but gates never reads it

    monkeypatch.setattr(MinGRU, "__init__", __init__)
    train_module.main([f"--dataset={char_dataset}", f"--out_dir={tmp_path}", "--mixer=mingru", "--n_layer=1",
                       "--n_head=1", "--n_embd=16", "--block_size=16", "--batch_size=2", "--max_iters=2",
                       "--eval_interval=2", "--eval_iters=1", "--device=cpu", "--dtype=float32"])
    out = capsys.readouterr().out
    assert "warning: 1 parameter(s) got no gradient in the first backward and will not train: " \
           "transformer.h.0.mixer.gate_bias" in out
