"""The selective-copying generator: the answer is the data tokens in order, and only they count."""
import torch

from data.selective_copying.task import FIRST_DATA, MARKER, NOISE, VOCAB_SIZE, answer_accuracy, make_batch


def test_batches_hold_the_data_in_order_after_the_markers():
    x, y = make_batch(8, 40, 5, generator=torch.Generator().manual_seed(0))
    assert x.shape == y.shape == (8, 45)
    assert (x[:, 40:] == MARKER).all() and (y[:, :40] == -1).all()
    for row_x, row_y in zip(x, y):
        context = row_x[:40]
        data = context[context != NOISE]
        assert data.numel() == 5 and (data >= FIRST_DATA).all() and (data < VOCAB_SIZE).all()
        assert torch.equal(row_y[40:], data)


def test_accuracy_counts_only_answer_positions():
    _x, y = make_batch(4, 20, 3, generator=torch.Generator().manual_seed(1))
    logits = torch.zeros(4, 23, VOCAB_SIZE)
    logits.scatter_(2, y.clamp(min=0).unsqueeze(-1), 1.0)  # right at every answer, noise elsewhere
    assert answer_accuracy(logits, y) == 1.0
    logits[0, 20] = 0.0
    logits[0, 20, (y[0, 20] + 1) % VOCAB_SIZE] = 1.0  # one wrong answer out of 12
    assert abs(answer_accuracy(logits, y) - 11 / 12) < 1e-6
