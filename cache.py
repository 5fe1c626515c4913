"""
The KV cache of the GPT, seen as the state of a multi-state RNN.

"Transformers are Multi-State RNNs" (Oren et al. 2024, arXiv 2401.06104) reads a decoder-only transformer as an
RNN whose state is its KV cache: one (key, value) "state" per token seen. Left alone the state grows with every
token (the `full` policy). Bounding it to K entries per layer turns the model into a finite multi-state RNN, and a
policy decides which entry to drop when a new one arrives:

- full:   keep everything (the ordinary KV cache).
- window: keep the last K tokens, first in first out.
- sink:   keep the first `n_sink` tokens plus the last K - n_sink (window+i, StreamingLLM, Xiao et al. 2023).
- h2o:    keep the `n_recent` most recent tokens plus the heavy hitters, the tokens with the largest attention
          accumulated over all queries so far, chosen per head (Zhang et al. 2023).
- tova:   drop the token with the lowest attention weight from the current query, averaged over heads and chosen
          per layer (Oren et al. 2024, Section 3.3).

Evicted entries are gone; kept entries keep their original position, as in the paper, so a bounded cache never
renumbers tokens. Each entry carries its position, and the attention mask is built from positions, not indices.

The model talks to a layer's cache in two calls per forward (model.CausalSelfAttention):
    k_all, v_all, pos_all = cache.append(k, v, pos)   # the new entries join the state
    ...attention weights `att` over those entries...
    cache.evict(att)                                  # the policy shrinks the state back to at most K entries
"""
import torch

POLICIES = ("full", "window", "sink", "h2o", "tova")


class LayerKV:
    """One layer's cache. k, v: (B, nh, L, hs); pos: (B, nh, L) original positions; score: h2o's accumulator."""

    def __init__(self, policy="full", size=None, n_sink=4, n_recent=None):
        self.policy, self.size, self.n_sink = policy, size, n_sink
        # h2o splits its budget between recent tokens and heavy hitters; half and half as in Zhang et al.
        self.n_recent = n_recent if n_recent is not None else (size // 2 if size else 0)
        self.k = self.v = self.pos = self.score = None

    def __len__(self):
        return 0 if self.k is None else self.k.size(2)

    def append(self, k, v, pos):
        """k, v: (B, nh, T, hs) new entries at positions pos: (T,). Returns all entries, old and new."""
        B, nh, T, _ = k.shape
        pos = pos.view(1, 1, T).expand(B, nh, T)
        if self.k is None:
            self.k, self.v, self.pos = k, v, pos
        else:
            self.k = torch.cat([self.k, k], dim=2)
            self.v = torch.cat([self.v, v], dim=2)
            self.pos = torch.cat([self.pos, pos], dim=2)
        if self.policy == "h2o":
            new = k.new_zeros(B, nh, T, dtype=torch.float32)
            self.score = new if self.score is None else torch.cat([self.score, new], dim=2)
        return self.k, self.v, self.pos

    def evict(self, att):
        """att: (B, nh, Tq, L) attention weights of the latest queries over the L entries returned by append."""
        if self.policy == "h2o":
            self.score += att.float().sum(dim=2)  # every query votes for the keys it attended to
        L = len(self)
        if self.policy == "full" or L <= self.size:
            return
        if self.policy in ("window", "sink"):
            # entries arrive in position order, so both policies are slices: no ranking, no gather
            first = self.n_sink if self.policy == "sink" else 0
            last = slice(L - (self.size - first), L)

            def cut(t):
                return torch.cat([t[:, :, :first], t[:, :, last]], dim=2) if first else t[:, :, last]

            self.k, self.v, self.pos = cut(self.k), cut(self.v), cut(self.pos)
            return
        B, nh = self.pos.shape[:2]
        if self.policy == "h2o":
            recent = self.pos.float().topk(self.n_recent, dim=-1).indices if self.n_recent else None
            score = self.score.clone()
            if recent is not None:
                score.scatter_(-1, recent, float("inf"))  # the recent window is always kept
            keep = score.topk(self.size, dim=-1).indices
        elif self.policy == "tova":
            # the last query's weights, averaged over heads: one decision per layer (and per batch row)
            w = att[:, :, -1, :].float().mean(dim=1)  # (B, L)
            keep = w.topk(self.size, dim=-1).indices.unsqueeze(1).expand(B, nh, self.size)
        keep = keep.sort(dim=-1).values  # keep entries in the order they arrived
        self.k = self.k.gather(2, keep.unsqueeze(-1).expand(-1, -1, -1, self.k.size(-1)))
        self.v = self.v.gather(2, keep.unsqueeze(-1).expand(-1, -1, -1, self.v.size(-1)))
        self.pos = self.pos.gather(2, keep)
        if self.score is not None:
            self.score = self.score.gather(2, keep)

    def tensors(self):
        return [t for t in (self.k, self.v, self.pos, self.score) if t is not None]


def make_cache(n_layer, policy="full", size=None, n_sink=4, n_recent=None):
    """One LayerKV per layer, after checking the options. Raises ValueError naming the bad option."""
    if policy not in POLICIES:
        raise ValueError(f"unknown cache policy {policy!r}; choose one of {', '.join(POLICIES)}")
    if policy == "full":
        if size is not None:
            raise ValueError("cache_size bounds the cache, but policy 'full' keeps every token; "
                             "drop cache_size or choose one of window, sink, h2o, tova")
    else:
        if size is None or isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(f"cache policy {policy!r} needs cache_size, an integer >= 1 (got {size!r})")
        if policy == "sink" and size <= n_sink:
            raise ValueError(f"cache policy 'sink' keeps {n_sink} sink tokens, so cache_size must be > {n_sink} "
                             f"(got {size})")
        if policy == "h2o" and n_recent is not None and not 0 <= n_recent < size:
            raise ValueError(f"h2o's n_recent must be in [0, cache_size) (got {n_recent} with cache_size {size})")
    return [LayerKV(policy, size, n_sink, n_recent) for _ in range(n_layer)]
