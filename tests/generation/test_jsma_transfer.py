"""JSMA in the transfer evaluation (Ross & Doshi-Velez's source x evaluated-model table; issue 15)."""
from __future__ import annotations

import pytest
import torch

from advlegit.generation.attacks.jsma import jsma
from advlegit.generation.config import ConfigError, from_dict
from advlegit.generation.evaluate import jsma_transfer
from advlegit.generation.metrics import accuracy


def test_jsma_transfer_matrix_is_accuracy_on_images_made_against_each_source(normal_model, batch):
    from advlegit.generation.models import build_model

    torch.manual_seed(0)  # a second, untrained model: the wiring is what is tested here
    other = build_model("ross_cnn", in_channels=1, num_classes=10, image_size=28, width=0.25, dropout=0.0,
                        batch_norm=False).eval()
    x, y = batch[0][:16], batch[1][:16]
    out = jsma_transfer({"a": normal_model, "b": other}, {"a": normal_model, "b": other}, x, y, batch_size=8)
    assert out["rows_evaluated"] == ["a", "b"] and out["cols_source"] == ["a", "b"]
    # by hand: the images made against "a", evaluated on "b"
    x_adv = torch.cat([jsma(normal_model, x[i:i + 8], y[i:i + 8]).images for i in (0, 8)])
    assert out["accuracy"][1][0] == accuracy(other, x_adv, y)
    # white-box JSMA mostly works on a tiny undefended net; the diagonal is below the clean accuracy
    assert out["white_box_success"]["a"] > 0.5
    assert out["accuracy"][0][0] < accuracy(normal_model, x, y)
    assert (out["theta"], out["gamma"], out["target"]) == (1.0, 0.25, "next")


def test_jsma_transfer_is_a_boolean_option():
    assert from_dict({"name": "t", "evaluation": {"jsma_transfer": True}}).evaluation.jsma_transfer is True
    assert from_dict({"name": "t"}).evaluation.jsma_transfer is False
    with pytest.raises(ConfigError, match="jsma_transfer"):
        from_dict({"name": "t", "evaluation": {"jsma_transfer": "yes"}})
