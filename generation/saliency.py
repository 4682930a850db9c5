"""Saliency maps: input gradients, SmoothGrad, integrated gradients, CAM and Grad-CAM.

Every function is batched, works on CPU and CUDA, and is written with `torch.autograd.grad`, so
`create_graph=True` keeps the attribution differentiable: a training loss can regularize it
(gradients reach the weights) and an attack can differentiate it with respect to the input.

Conventions:
- `classes` is a LongTensor (N,), an int for every example, or None for the predicted class.
- Per-example gradients come from the gradient of a *sum* over the batch, which is exact only
  when examples do not interact: put the model in eval mode (dropout off, batch norm frozen)
  yourself. Nothing here calls `model.eval()` or `model.train()`; the caller owns the mode.
- If `x` already requires grad it is used as it is (so `create_graph=True` lets gradients flow
  back to whatever produced `x`); otherwise a detached copy is differentiated.
"""
from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

Classes = torch.Tensor | int | None


def _differentiable_input(x: torch.Tensor) -> torch.Tensor:
    return x if x.requires_grad else x.detach().requires_grad_(True)


def _class_tensor(classes: Classes, logits: torch.Tensor) -> torch.Tensor:
    if classes is None:
        return logits.detach().argmax(dim=1)
    if isinstance(classes, int):
        return torch.full((logits.shape[0],), classes, dtype=torch.long, device=logits.device)
    return classes.to(device=logits.device, dtype=torch.long).reshape(-1)


def _selected_logits(logits: torch.Tensor, classes: torch.Tensor) -> torch.Tensor:
    return logits.gather(1, classes[:, None]).squeeze(1)


def logit_gradient(model: nn.Module, x: torch.Tensor, classes: Classes = None, *,
                   create_graph: bool = False) -> torch.Tensor:
    """d Psi_c(x) / dx per example (Psi = logits); classes None = the predicted class. Shape of x."""
    x_in = _differentiable_input(x)
    logits = model(x_in)
    chosen = _selected_logits(logits, _class_tensor(classes, logits))
    (grad,) = torch.autograd.grad(chosen.sum(), x_in, create_graph=create_graph)
    return grad


def loss_gradient(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                  create_graph: bool = False) -> torch.Tensor:
    """d CE(f(x_i), y_i) / dx_i per example (the batch loss is summed, not averaged)."""
    x_in = _differentiable_input(x)
    loss = F.cross_entropy(model(x_in), y, reduction="sum")
    (grad,) = torch.autograd.grad(loss, x_in, create_graph=create_graph)
    return grad


def smoothgrad(model: nn.Module, x: torch.Tensor, classes: Classes = None, *, n: int = 50,
               sigma: float = 0.15, seed: int = 0, input_range: float = 1.0,
               noise: torch.Tensor | None = None, create_graph: bool = False) -> torch.Tensor:
    """SmoothGrad (Smilkov et al. 2017): mean over n draws of the logit gradient at x + N(0, s^2),
    s = sigma * input_range (sigma is a fraction of the input range; 1.0 for [0,1] images).

    The class is fixed at the clean input (None = predicted at x). Noise comes from a generator
    seeded with `seed`, one draw of x's shape per sample; `noise` (n, *x.shape) overrides it
    (the tests pass Captum's own draw to compare value for value).
    """
    if n < 1:
        raise ValueError(f"smoothgrad needs n >= 1, got {n}")
    if classes is None:
        with torch.no_grad():
            classes = model(x).argmax(dim=1)
    if noise is None:
        g = torch.Generator(device=x.device).manual_seed(int(seed))
        std = sigma * input_range
        noise = torch.stack([torch.randn(x.shape, generator=g, device=x.device, dtype=x.dtype) * std
                             for _ in range(n)])
    elif noise.shape != (n, *x.shape):
        raise ValueError(f"noise must have shape {(n, *x.shape)}, got {tuple(noise.shape)}")
    total = torch.zeros_like(x)
    for sample in noise:
        total = total + logit_gradient(model, x + sample, classes, create_graph=create_graph)
    return total / n


def _riemann_alphas(steps: int, method: str, device: torch.device, dtype: torch.dtype) -> torch.Tensor:
    k = torch.arange(1, steps + 1, device=device, dtype=dtype)
    if method == "riemann_right":
        return k / steps
    if method == "riemann_middle":
        return (k - 0.5) / steps
    raise ValueError(f"method must be 'riemann_right' or 'riemann_middle', got {method!r}")


def path_integrated_gradients(fn: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor,
                              x_end: torch.Tensor, *, steps: int = 50, create_graph: bool = False,
                              method: str = "riemann_right",
                              points_per_call: int | None = None) -> torch.Tensor:
    """Integrated gradients of `fn` along the straight path x -> x_end (Chen et al. 2019):

        IG_i = (x_end_i - x_i) / m * sum_{k=1..m} d fn(x + a_k (x_end - x)) / dx_i,

    a_k = k/m ("riemann_right", Chen et al.'s sum and Captum's riemann_right) or (k-1/2)/m
    ("riemann_middle"). Completeness: IG.sum() per example ~ fn(x_end) - fn(x).

    `fn` maps a batch of points to one scalar per point. It is called on `points_per_call` path
    points at once (default: all m) stacked alpha-major, i.e. a batch of k*N rows where row j is
    example j % N, so a per-example loss can repeat its labels: `y.repeat(len(z) // len(y))`
    (see `per_example_loss`). With create_graph=True the result is differentiable with respect to
    the weights and to x and x_end when they require grad.
    """
    if steps < 1:
        raise ValueError(f"integrated gradients needs steps >= 1, got {steps}")
    if x.shape != x_end.shape:
        raise ValueError(f"x and x_end must have the same shape, got {tuple(x.shape)} and {tuple(x_end.shape)}")
    alphas = _riemann_alphas(steps, method, x.device, x.dtype)
    chunk = steps if points_per_call is None else max(1, int(points_per_call))
    direction = x_end - x
    total = torch.zeros_like(x)
    for a in alphas.split(chunk):
        points = (x.unsqueeze(0) + a.view(-1, *([1] * x.dim())) * direction.unsqueeze(0)).flatten(0, 1)
        if not points.requires_grad:
            points.requires_grad_(True)
        values = fn(points)
        if values.shape != (points.shape[0],):
            raise ValueError(f"fn must return one scalar per point, shape {(points.shape[0],)}, "
                             f"got {tuple(values.shape)}")
        (grad,) = torch.autograd.grad(values.sum(), points, create_graph=create_graph)
        total = total + grad.view(len(a), *x.shape).sum(dim=0)
    return direction * total / steps


def per_example_loss(model: nn.Module, y: torch.Tensor) -> Callable[[torch.Tensor], torch.Tensor]:
    """fn(points) -> CE per point, for `path_integrated_gradients` (labels repeated alpha-major)."""
    def fn(points: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(model(points), y.repeat(points.shape[0] // y.shape[0]), reduction="none")
    return fn


def integrated_gradients(model: nn.Module, x: torch.Tensor, classes: Classes = None, *,
                         baseline: torch.Tensor | float | None = None, steps: int = 50,
                         create_graph: bool = False, method: str = "riemann_right",
                         points_per_call: int | None = None) -> torch.Tensor:
    """IG of the class logit from `baseline` (None = zeros) to x (Sundararajan et al. 2017).

    Riemann sum with a_k = k/m by default ("riemann_right", as Captum's method of that name);
    "riemann_middle" is also available. classes None = the class predicted at x.
    """
    base = (torch.zeros_like(x) if baseline is None
            else torch.as_tensor(baseline, dtype=x.dtype, device=x.device).expand_as(x))
    if classes is None:
        with torch.no_grad():
            classes = model(x).argmax(dim=1)
    cls = _class_tensor(classes, x.new_zeros(x.shape[0], 1))

    def logit(points: torch.Tensor) -> torch.Tensor:
        return _selected_logits(model(points), cls.repeat(points.shape[0] // cls.shape[0]))

    return path_integrated_gradients(logit, base, x, steps=steps, create_graph=create_graph,
                                     method=method, points_per_call=points_per_call)


def _require_gap_head(model: nn.Module, what: str) -> None:
    if not (hasattr(model, "feature_maps") and isinstance(getattr(model, "linear", None), nn.Linear)):
        raise ValueError(f"{what} needs a model with a global-average-pooling head "
                         f"(`feature_maps(x)` and `linear`), such as architecture = \"gap_cnn\"; "
                         f"got {type(model).__name__}")


def cam(model: nn.Module, x: torch.Tensor, classes: Classes = None) -> torch.Tensor:
    """Class activation map (Zhou et al. 2016) W_c . A of a GAP-head model, shape (N, h, w).

    Exact for such a model: logit_c = CAM_c.mean() + bias_c. Differentiable (no detach), so it
    can sit inside a training loss (Boopathy et al.'s Int).
    """
    _require_gap_head(model, "CAM")
    maps = model.feature_maps(x)
    if classes is None:
        with torch.no_grad():
            classes = model.linear(maps.mean(dim=(2, 3))).argmax(dim=1)
    cls = _class_tensor(classes, maps.new_zeros(maps.shape[0], 1))
    weights = model.linear.weight[cls]                       # (N, K)
    return torch.einsum("nk,nkhw->nhw", weights, maps)


def cam_all_classes(model: nn.Module, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """CAMs of every class, (N, K, h, w), and the logits, from one pass of a GAP-head model."""
    _require_gap_head(model, "CAM")
    maps = model.feature_maps(x)
    cams = torch.einsum("ck,nkhw->nchw", model.linear.weight, maps)
    return cams, model.linear(maps.mean(dim=(2, 3)))


def default_gradcam_layer(model: nn.Module) -> nn.Module:
    """The output of the last convolution of `model.features`, after its activation when one follows
    directly (Grad-CAM's "last convolutional feature maps"; for a GAP head this makes Grad-CAM
    equal ReLU(CAM) / (h*w))."""
    features = getattr(model, "features", None)
    modules = list(features) if isinstance(features, nn.Sequential) else []
    convs = [i for i, m in enumerate(modules) if isinstance(m, nn.Conv2d)]
    if not convs:
        raise ValueError(f"Grad-CAM needs a layer: {type(model).__name__} has no nn.Conv2d in "
                         f"`model.features`; pass layer= explicitly")
    last = convs[-1]
    following = modules[last + 1] if last + 1 < len(modules) else None
    activations = (nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.Softplus, nn.SiLU)
    return following if isinstance(following, activations) else modules[last]


def grad_cam(model: nn.Module, x: torch.Tensor, classes: Classes = None,
             layer: nn.Module | str | None = None, *, create_graph: bool = False) -> torch.Tensor:
    """Grad-CAM (Selvaraju et al. 2017): ReLU(sum_k alpha_k A_k), alpha_k = spatial mean of
    d Psi_c / d A_k, with A the output of `layer` (a module, a dotted name, or None for
    `default_gradcam_layer`). Shape (N, h, w)."""
    if isinstance(layer, str):
        layer = model.get_submodule(layer)
    elif layer is None:
        layer = default_gradcam_layer(model)
    captured: list[torch.Tensor] = []
    handle = layer.register_forward_hook(lambda _m, _i, out: captured.append(out))
    try:
        logits = model(_differentiable_input(x))
    finally:
        handle.remove()
    if len(captured) != 1:
        raise ValueError(f"Grad-CAM layer {layer} ran {len(captured)} times in one forward pass; expected once")
    maps = captured[0]
    chosen = _selected_logits(logits, _class_tensor(classes, logits))
    (grads,) = torch.autograd.grad(chosen.sum(), maps, create_graph=create_graph)
    alpha = grads.mean(dim=(2, 3), keepdim=True)
    return F.relu((alpha * maps).sum(dim=1))


def _gradient_method(model: nn.Module, x: torch.Tensor, classes: Classes = None) -> torch.Tensor:
    return logit_gradient(model, x, classes)


METHODS: dict[str, Callable[..., torch.Tensor]] = {
    "gradient": _gradient_method,
    "smoothgrad": smoothgrad,
    "integrated_gradients": integrated_gradients,
    "cam": cam,
    "grad_cam": grad_cam,
}

__all__ = ["METHODS", "cam", "cam_all_classes", "default_gradcam_layer", "grad_cam", "integrated_gradients",
           "logit_gradient",
           "loss_gradient", "path_integrated_gradients", "per_example_loss", "smoothgrad"]
