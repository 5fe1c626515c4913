"""KV-cache policies: exact when nothing is evicted, bounded always, and evicting what each policy says."""
import pytest
import torch

from cache import POLICIES, LayerKV, make_cache
from model import GPT, GPTConfig

BOUNDED = [p for p in POLICIES if p != "full"]


def gpt():
    torch.manual_seed(0)
    return GPT(GPTConfig(block_size=32, vocab_size=13, n_layer=2, n_head=2, n_embd=16)).double().eval()


def run(model, idx, prompt_len, **cache):
    """Prefill prompt_len tokens, then step through the rest; returns every position's logits and the state."""
    logits, state = model.prefill(idx[:, :prompt_len], model.init_state(idx.size(0), **cache))
    out = [logits]
    for t in range(prompt_len, idx.size(1)):
        step_logits, state = model.step(idx[:, t], state)
        out.append(step_logits[:, None])
    return torch.cat(out, dim=1), state


@pytest.mark.parametrize("policy", BOUNDED)
def test_a_cache_large_enough_equals_the_full_cache(policy):
    model, idx = gpt(), torch.randint(0, 13, (2, 20), generator=torch.Generator().manual_seed(1))
    full, _ = run(model, idx, 5)
    bounded, _ = run(model, idx, 5, policy=policy, size=20)
    torch.testing.assert_close(bounded, full, rtol=0, atol=0)


@pytest.mark.parametrize("policy", BOUNDED)
@pytest.mark.parametrize("prompt_len", [1, 12])
def test_every_policy_keeps_at_most_k_entries(policy, prompt_len):
    model, idx = gpt(), torch.randint(0, 13, (2, 30), generator=torch.Generator().manual_seed(2))
    K = 6
    state = model.init_state(2, policy=policy, size=K)
    _, state = model.prefill(idx[:, :prompt_len], state)
    for t in range(prompt_len, 30):
        assert all(len(layer["kv"]) <= K for layer in state["layers"])
        logits, state = model.step(idx[:, t], state)
        assert torch.isfinite(logits).all()
    assert all(len(layer["kv"]) == K for layer in state["layers"])


def fill(cache, n, B=1, nh=2):
    """Append n entries at positions 0..n-1; key values encode the position, so evictions are visible."""
    k = torch.arange(n, dtype=torch.float64).view(1, 1, n, 1).expand(B, nh, n, 1)
    return cache.append(k, k.clone(), torch.arange(n))


def kept(cache):
    return [sorted(head) for head in cache.pos[0].tolist()]  # per head, by position (H2O and TOVA keep no order)


def test_window_keeps_the_last_k():
    cache = LayerKV("window", 3)
    fill(cache, 5)
    cache.evict(torch.full((1, 2, 5, 5), 0.2))
    assert kept(cache) == [[2, 3, 4], [2, 3, 4]]
    assert cache.k[0, 0, :, 0].tolist() == [2.0, 3.0, 4.0]  # keys and values move with their positions


def test_sink_keeps_the_first_tokens_and_a_window():
    cache = LayerKV("sink", 4, n_sink=2)
    fill(cache, 7)
    cache.evict(torch.full((1, 2, 7, 7), 1 / 7))
    assert kept(cache) == [[0, 1, 5, 6], [0, 1, 5, 6]]


def test_sink_keeps_four_sink_tokens_by_default():
    """StreamingLLM's 4 attention sinks, through make_cache as sample.py and bench.py build it."""
    cache = make_cache(1, policy="sink", size=6)[0]
    fill(cache, 10)
    cache.evict(torch.full((1, 2, 10, 10), 0.1))
    assert kept(cache) == [[0, 1, 2, 3, 8, 9], [0, 1, 2, 3, 8, 9]]


def test_tova_drops_the_lowest_weight_of_the_last_query_averaged_over_heads():
    cache = LayerKV("tova", 3)
    fill(cache, 4)
    att = torch.zeros(1, 2, 1, 4)
    att[0, 0, 0] = torch.tensor([0.1, 0.5, 0.1, 0.3])
    att[0, 1, 0] = torch.tensor([0.4, 0.1, 0.0, 0.5])  # means: 0.25, 0.3, 0.05, 0.4 -> position 2 goes
    cache.evict(att)
    assert kept(cache) == [[0, 1, 3], [0, 1, 3]]


def test_h2o_keeps_recent_tokens_and_per_head_heavy_hitters():
    cache = LayerKV("h2o", 3, n_recent=1)
    fill(cache, 5)
    att = torch.zeros(1, 2, 2, 5)  # two queries; their attention accumulates
    att[0, 0, :, 1] = 0.5
    att[0, 0, 0, 2] = 0.4
    att[0, 0, 1, 0] = 0.3
    att[0, 1, :, 3] = 0.6
    att[0, 1, 0, 0] = 0.1
    cache.evict(att)
    # head 0: scores 0.3, 1.0, 0.4, 0, 0 -> heavy hitters 1 and 2; head 1: 0.1, 0, 0, 1.2, 0 -> 3 and 0; recent: 4
    assert kept(cache) == [[1, 2, 4], [0, 3, 4]]
    cache.append(*(torch.full((1, 2, 1, 1), 5.0),) * 2, torch.tensor([5]))
    cache.evict(torch.full((1, 2, 1, 4), 0.25))  # every entry +0.25; the new token 5 is the recent one now
    assert kept(cache) == [[1, 2, 5], [0, 3, 5]]


@pytest.mark.parametrize("options,match", [
    ({"policy": "lru", "size": 4}, "unknown cache policy 'lru'"),
    ({"policy": "window"}, "needs cache_size"),
    ({"policy": "tova", "size": 0}, "needs cache_size, an integer >= 1"),
    ({"policy": "sink", "size": 4}, "must be > 4"),
    ({"policy": "full", "size": 8}, "keeps every token"),
])
def test_bad_options_are_clear_errors(options, match):
    with pytest.raises(ValueError, match=match):
        make_cache(2, **options)


@pytest.mark.parametrize("policy", ["tova", "h2o"])
def test_model_level_keeps_match_a_hand_simulation(policy):
    """A 1-layer GPT, a prompt longer than K and then several single-token queries: the positions each policy keeps
    against a plain re-simulation written from the papers' rules (post-softmax weights; TOVA: the last query,
    averaged over heads; H2O: attention accumulated over every query, per head, plus the most recent K/2)."""
    torch.manual_seed(0)
    model = GPT(GPTConfig(block_size=32, vocab_size=13, n_layer=1, n_head=2, n_embd=8, init="torch")).double().eval()
    with torch.no_grad():
        model.transformer.h[0].mixer.c_attn.weight.mul_(4)  # peaky attention: no near-ties in the rankings
    K, prompt, n_steps, nh = 4, 7, 6, 2
    idx = torch.randint(0, 13, (1, prompt + n_steps), generator=torch.Generator().manual_seed(3))
    # every position's query and key (one layer: they depend on its own token and position only)
    block = model.transformer.h[0]
    with torch.no_grad():
        x = block.ln_1(model.transformer.wte(idx[0]) + model.transformer.wpe(torch.arange(idx.size(1))))
        q, k, _ = block.mixer.c_attn(x).split(8, dim=-1)
    q, k = q.view(-1, nh, 4), k.view(-1, nh, 4)  # (T, nh, hs)

    def weights(t, kept):  # query t's softmax over the kept positions, per head: {pos: (nh,)}
        scores = torch.stack([(q[t] * k[j]).sum(-1) / 2.0 for j in kept])  # (len, nh), 1/sqrt(hs) = 1/2
        return dict(zip(kept, torch.softmax(scores, dim=0)))

    kept = [list(range(prompt)) for _ in range(nh)]  # per head (TOVA keeps the same set in every head)
    acc = [dict.fromkeys(range(prompt), 0.0) for _ in range(nh)]
    expected = []
    for t in range(prompt - 1, prompt + n_steps):
        if t >= prompt:  # a step: the new token joins, then the policy shrinks the state back to K
            kept = [ks + [t] for ks in kept]
            for h in range(nh):
                acc[h][t] = 0.0
        queries = range(prompt) if t == prompt - 1 else [t]  # the prefill's queries, then one per step
        for h in range(nh):
            for s in queries:
                for j, w in weights(s, [j for j in kept[h] if j <= s]).items():
                    acc[h][j] += w[h].item()
        if len(kept[0]) > K:
            if policy == "tova":
                w = weights(t, kept[0])
                drop_order = sorted(kept[0], key=lambda j: w[j].mean().item())
                kept = [sorted(drop_order[len(kept[0]) - K:])] * nh
            else:
                new = []
                for h in range(nh):
                    recent = sorted(kept[h])[-K // 2:]
                    heavy = sorted((j for j in kept[h] if j not in recent), key=lambda j: -acc[h][j])
                    new.append(sorted(recent + heavy[:K - K // 2]))
                kept = new
        expected.append([list(ks) for ks in kept])

    _, state = model.prefill(idx[:, :prompt], model.init_state(1, policy=policy, size=K))
    def positions(state):  # by position per head: H2O and TOVA keep no order
        return [sorted(head) for head in state["layers"][0]["kv"].pos[0].tolist()]

    got = [positions(state)]
    for t in range(prompt, prompt + n_steps):
        _, state = model.step(idx[:, t], state)
        got.append(positions(state))
    assert got == expected
