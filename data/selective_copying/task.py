"""
Selective copying, the synthetic task of Mamba (Gu and Dao 2023, Section 4.1.1) used in Tables 1 and 2 of
"Were RNNs All We Needed?". Generated on the fly: there are no files to prepare.

A sequence holds L context positions of noise with n_data data tokens scattered at random positions, followed by
n_data markers. At the i-th marker the model must output the i-th data token, in order of appearance. Solving it
needs content-dependent memory: the model has to decide, from the token alone, what to keep and what to skip,
which is what input-dependent gates give an RNN.

Vocabulary (16 tokens, as in the paper): 0 = noise, 1 = marker, 2..15 = the 14 data symbols.
"""
import torch

VOCAB_SIZE = 16
NOISE, MARKER, FIRST_DATA = 0, 1, 2


def make_batch(batch_size, seq_len, n_data, generator=None, device="cpu"):
    """Returns x, y of shape (B, seq_len + n_data). y is -1 (ignored by the loss) except at the answer positions."""
    if not 1 <= n_data <= seq_len:
        raise ValueError(f"selective copying needs 1 <= n_data <= seq_len (got n_data={n_data}, seq_len={seq_len})")
    B, L, N = batch_size, seq_len, n_data
    data = torch.randint(FIRST_DATA, VOCAB_SIZE, (B, N), generator=generator)
    # N distinct random positions per row, sorted so that the answer order is the order of appearance
    where = torch.rand(B, L, generator=generator).argsort(dim=1)[:, :N].sort(dim=1).values
    context = torch.full((B, L), NOISE, dtype=torch.long).scatter(1, where, data)
    x = torch.cat([context, torch.full((B, N), MARKER, dtype=torch.long)], dim=1)
    y = torch.full_like(x, -1)
    y[:, L:] = data  # predicted at the marker positions, so the answer is read off the markers' logits
    return x.to(device), y.to(device)


def answer_accuracy(logits, y):
    """Per-token accuracy over the answer positions (y != -1). logits (B, T, V), y (B, T)."""
    mask = y != -1
    return (logits.argmax(dim=-1)[mask] == y[mask]).float().mean().item()


class CopyingBatches:
    """train.py's batches for this task, with common.Batches' get(): every split draws new sequences (the eval's
    generator is seeded apart from training's, so its sequences are not the ones trained on)."""

    def __init__(self, batch_size, seq_len, n_data, device="cpu"):
        self.batch_size, self.seq_len, self.n_data, self.device = batch_size, seq_len, n_data, device

    def get(self, split, generator, length=None, n=None):
        return make_batch(self.batch_size, self.seq_len, self.n_data, generator, self.device)
