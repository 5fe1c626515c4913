"""CUDA paths: the same checks as on the CPU, run only where a GPU is present."""
import pytest
import torch
from test_scan import gates

import train
from model import GPT, MIXERS, GPTConfig
from scan import BACKENDS, scan

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@pytest.mark.parametrize("backend", [b for b in BACKENDS if b not in ("reference", "c")] + [None])  # c: CPU only
@pytest.mark.parametrize("T", [1, 65, 1000])
def test_scan_on_cuda_matches_the_cpu_reference(backend, T):
    log_a, log_b = gates(3, T, 8)
    h0 = torch.rand(3, 8, dtype=torch.float64)
    w = torch.randn(3, T, 8, dtype=torch.float64)
    inputs = [t.clone().requires_grad_() for t in (log_a, log_b, h0)]
    ref = scan(*inputs, backend="reference")
    ref_grads = torch.autograd.grad((ref * w).sum(), inputs)
    cuda_inputs = [t.cuda().requires_grad_() for t in (log_a, log_b, h0)]
    out = scan(*cuda_inputs, backend=backend)
    grads = torch.autograd.grad((out * w.cuda()).sum(), cuda_inputs)
    torch.testing.assert_close(out.cpu(), ref, rtol=1e-9, atol=0)
    for g, r in zip(grads, ref_grads):
        torch.testing.assert_close(g.cpu(), r, rtol=1e-8, atol=1e-10 * max(r.abs().max().item(), 1.0))


@pytest.mark.parametrize("mixer", MIXERS)
def test_model_on_cuda_parallel_matches_steps(mixer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=11, n_layer=2, n_head=2, n_embd=16, mixer=mixer, conv=3))
    model = model.double().cuda().eval()
    idx = torch.randint(0, 11, (2, 20), device="cuda")
    parallel, _ = model(idx, idx)
    state, stepped = model.init_state(2), []
    for t in range(20):
        logits, state = model.step(idx[:, t], state)
        stepped.append(logits)
    torch.testing.assert_close(parallel, torch.stack(stepped, dim=1), rtol=1e-9, atol=1e-9)


@pytest.mark.parametrize("mixer", MIXERS)
def test_bf16_training_step_on_cuda(mixer):
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=64, vocab_size=11, n_layer=2, n_head=2, n_embd=32, mixer=mixer)).cuda()
    opt, = model.configure_optimizers("adamw", 0.1, 1e-3, (0.9, 0.95), "cuda")
    idx = torch.randint(0, 11, (4, 64), device="cuda")
    losses = []
    for _ in range(20):
        with torch.autocast("cuda", dtype=torch.bfloat16):
            _, loss = model(idx, idx)
        loss.backward()
        opt.step()
        opt.zero_grad()
        losses.append(loss.item())
    assert losses[-1] < losses[0]


def test_compile_auto_compiles_on_cuda(tmp_path, char_dataset, monkeypatch):
    compiled = []
    monkeypatch.setattr(torch, "compile", lambda model, **kw: compiled.append(model) or model)
    train.main(["--device=cuda", "--n_layer=1", "--n_head=2", "--n_embd=32", "--block_size=16", "--batch_size=4",
                "--eval_iters=2", "--max_iters=2", "--eval_interval=2", f"--out_dir={tmp_path}"])
    assert len(compiled) == 1


def test_c_backend_refuses_cuda_tensors_clearly():
    log_a, log_b = (t.float().cuda() for t in gates(1, 8, 2))
    with pytest.raises(ValueError, match="the c scan backend needs CPU tensors"):
        scan(log_a, log_b, backend="c")
