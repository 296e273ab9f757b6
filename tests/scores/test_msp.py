"""MSP score: max_k softmax(logits)_k."""

import math

import pytest
import torch

from bgresample.scores import SCORES, get_score, msp


def test_msp_hand_values():
    logits = torch.tensor(
        [
            [0.0, 0.0, 0.0, 0.0],  # uniform: 1/4
            [math.log(3.0), 0.0, 0.0, 0.0],  # 3 / (3 + 1 + 1 + 1) = 1/2
            [0.0, math.log(6.0), math.log(2.0), 0.0],  # 6 / (1 + 6 + 2 + 1) = 0.6
            [1000.0, 0.0, 0.0, 0.0],  # one-hot: 1
        ],
        dtype=torch.float64,
    )
    expected = torch.tensor([0.25, 0.5, 0.6, 1.0], dtype=torch.float64)
    assert torch.allclose(msp(logits), expected, atol=1e-12)


def test_msp_shape_and_shift_invariance():
    logits = torch.randn(5, 10, generator=torch.Generator().manual_seed(0))
    scores = msp(logits)
    assert scores.shape == (5,)
    assert torch.allclose(msp(logits + 7.0), scores, atol=1e-6)
    assert ((scores >= 0.1 - 1e-7) & (scores <= 1.0)).all()


def test_registry():
    assert SCORES["msp"].fn is msp
    assert get_score("msp").needs == "logits"
    with pytest.raises(ValueError, match="valid names: .*msp"):
        get_score("nope")
