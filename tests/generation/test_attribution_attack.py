"""The top-k attribution attack changes the explanation, never the label."""
import torch
from torch import nn

from advlegit.generation.attribution_attack import softplus_copy, top_k_attack
from advlegit.generation.attribution_metrics import top_k_intersection


def test_softplus_copy_replaces_every_relu_and_leaves_the_model_alone(normal_model, batch):
    smooth = softplus_copy(normal_model, beta=10.0)
    assert not any(isinstance(m, nn.ReLU) for m in smooth.modules())
    assert any(isinstance(m, nn.ReLU) for m in normal_model.modules())
    x = batch[0]
    agree = (smooth(x).argmax(1) == normal_model(x).argmax(1)).float().mean()
    assert agree > 0.8      # a close surrogate: same decisions on real digits


def test_top_k_attack_keeps_the_label_and_moves_the_top_pixels(normal_model, batch):
    x = batch[0][:8]
    label = normal_model(x).argmax(1)
    # k = 200 is more than a digit's lit pixels: all |IG| mass starts inside the top-k, where the
    # loss is flat at x itself (the attack must start off x to get anywhere)
    res = top_k_attack(normal_model, x, label, epsilon=0.3, steps=8, step_size=0.04, k=200, restarts=2,
                       ig_steps=6, seed=0)
    assert res.attacked.all()  # the labels are the model's own: every image is attacked
    assert res.label_kept.all()
    assert torch.equal(normal_model(res.images).argmax(1), label)
    assert (res.images - x).abs().max() <= 0.3 + 1e-6
    assert res.images.min() >= 0 and res.images.max() <= 1
    assert (res.images - x).abs().amax() > 0
    moved = top_k_intersection(res.original_saliency, res.attacked_saliency, k=100)
    assert moved.mean() < 0.8      # identical maps would give 1.0
