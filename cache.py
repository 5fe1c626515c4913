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
renumbers tokens. Each entry carries its position, and the attention mask is built from positions, not indices, so
the entries' order in the cache does not matter: window and sink keep them in the order they arrived, while H2O and
TOVA, stepping one token at a time, put the newest entry in the dropped one's slot rather than shift the rest.

The model talks to a layer's cache in two calls per forward (model.CausalSelfAttention):
    k_all, v_all, pos_all = cache.append(k, v, pos)   # the new entries join the state
    ...attention weights `att` over those entries...
    cache.evict(att)                                  # the policy shrinks the state back to at most K entries
"""
import torch

POLICIES = ("full", "window", "sink", "h2o", "tova")


class LayerKV:
    """One layer's cache. k, v: (B, nh, L, hs); pos: (B, nh, L) original positions; score: h2o's accumulator.

    The entries live in preallocated buffers with room to grow, the kept ones at [lo, hi) along dim 2, so that
    appending a token writes one slot instead of copying the whole cache (a torch.cat per token made the full cache
    quadratic in its length) and a window's eviction moves lo instead of copying what it keeps."""

    def __init__(self, policy="full", size=None, n_sink=4, n_recent=None):
        self.policy, self.size, self.n_sink = policy, size, n_sink
        # h2o splits its budget between recent tokens and heavy hitters; half and half as in Zhang et al.
        self.n_recent = n_recent if n_recent is not None else (size // 2 if size else 0)
        self.buffers, self.lo, self.hi = None, 0, 0  # {"k", "v", "pos", "score"?}: (B, nh, capacity, ...)

    def __len__(self):
        return self.hi - self.lo

    def _kept(self, name):
        return None if self.buffers is None or name not in self.buffers else self.buffers[name][:, :, self.lo:self.hi]

    k = property(lambda self: self._kept("k"))
    v = property(lambda self: self._kept("v"))
    pos = property(lambda self: self._kept("pos"))
    score = property(lambda self: self._kept("score"))

    def _make_room(self, like, T):
        """Buffers that hold the kept entries at [0, L) and T more: the old ones, or new ones twice as large."""
        B, nh, L = *like["k"].shape[:2], len(self)
        capacity = 0 if self.buffers is None else self.buffers["k"].size(2)
        if self.hi + T <= capacity:
            return
        need = L + T if self.policy == "full" else max(L, self.size) + T
        new = {name: t.new_empty(B, nh, max(2 * need, 16), *t.shape[3:]) for name, t in like.items()}
        if L:
            for name, t in new.items():
                t[:, :, :L] = self._kept(name)
        self.buffers, self.lo, self.hi = new, 0, L

    def append(self, k, v, pos):
        """k, v: (B, nh, T, hs) new entries at positions pos: (T,). Returns all entries, old and new."""
        B, nh, T, _ = k.shape
        new = {"k": k, "v": v, "pos": pos.view(1, 1, T).expand(B, nh, T)}
        if self.policy == "h2o":
            new["score"] = k.new_zeros(B, nh, T, dtype=torch.float32)
        self._make_room(new, T)
        for name, t in new.items():
            self.buffers[name][:, :, self.hi:self.hi + T] = t
        self.hi += T
        return self.k, self.v, self.pos

    def evict(self, att):
        """att: (B, nh, Tq, L) attention weights of the latest queries over the L entries returned by append."""
        if self.policy == "h2o":
            self.score.add_(att.float().sum(dim=2))  # every query votes for the keys it attended to
        L = len(self)
        if self.policy == "full" or L <= self.size:
            return
        new_lo = self.hi - self.size  # the kept entries end up at [new_lo, hi), in the order they arrived
        if self.policy == "sink":  # the first n_sink move up to sit just before the last size - n_sink
            for t in self.buffers.values():
                t[:, :, new_lo:new_lo + self.n_sink] = t[:, :, self.lo:self.lo + self.n_sink].clone()
        if self.policy in ("window", "sink"):  # entries arrive in position order: no ranking, no gather
            self.lo = new_lo
            return
        B, nh = self.pos.shape[:2]
        if self.policy == "h2o":  # heavy hitters, chosen per head: the highest accumulated attention
            score = self.score.clone()
            if self.n_recent:  # the recent window is always kept
                score.scatter_(-1, self.pos.float().topk(self.n_recent, dim=-1).indices, float("inf"))
        elif self.policy == "tova":
            # the last query's weights, averaged over heads: one decision per layer (and per batch row)
            score = att[:, :, -1:, :].float().mean(dim=1)  # (B, 1, L)
        rows, heads = torch.arange(B, device=score.device), torch.arange(nh, device=score.device)
        if L == self.size + 1:  # a step: one entry in, one out, and the newest entry takes the slot of the dropped
            drop = score.argmin(dim=-1).expand(B, nh)  # (B, nh), relative to lo
            for t in self.buffers.values():
                t[rows.view(B, 1), heads.view(1, nh), self.lo + drop] = t[:, :, self.hi - 1]
            self.hi -= 1
            return
        keep = score.topk(self.size, dim=-1).indices.sort(dim=-1).values.expand(B, nh, self.size)
        for name, t in self.buffers.items():  # indexing copies before the write, so the slots may overlap
            t[:, :, new_lo:self.hi] = self._kept(name)[rows.view(B, 1, 1), heads.view(1, nh, 1), keep]
        self.lo = new_lo

    def tensors(self):
        return [self._kept(name) for name in self.buffers] if self.buffers is not None else []


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
