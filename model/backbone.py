"""Vision backbones returning the stride-8/16/32 feature maps Deformable DETR uses.

torchvision is not a dependency, so the ResNet is written here with
torchvision's parameter names (``conv1``, ``bn1``, ``layer1.0.downsample.0``
...): official RLIPv2 checkpoints (``backbone.0.body.*``) and torchvision
``resnet50-*.pth`` files map onto it by prefix alone. BatchNorm is frozen as in
DETR. Swin-T/L come from ``transformers``' ``SwinBackbone``.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

log = logging.getLogger(__name__)


class FrozenBatchNorm2d(nn.Module):
    """BatchNorm2d with fixed statistics and affine parameters (DETR's, with eps)."""

    def __init__(self, num_features: int, eps: float = 1e-5) -> None:
        super().__init__()
        self.eps = eps
        self.register_buffer("weight", torch.ones(num_features))
        self.register_buffer("bias", torch.zeros(num_features))
        self.register_buffer("running_mean", torch.zeros(num_features))
        self.register_buffer("running_var", torch.ones(num_features))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[no-untyped-def]
        # torchvision checkpoints carry a counter a frozen norm has no use for.
        state_dict.pop(prefix + "num_batches_tracked", None)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, x: Tensor) -> Tensor:
        scale = self.weight * (self.running_var + self.eps).rsqrt()
        shift = self.bias - self.running_mean * scale
        return x * scale[None, :, None, None] + shift[None, :, None, None]


class Bottleneck(nn.Module):
    """ResNet v1.5 bottleneck: the stride sits on the 3x3 convolution."""

    expansion = 4

    def __init__(self, in_channels: int, width: int, stride: int = 1) -> None:
        super().__init__()
        out_channels = width * self.expansion
        self.conv1 = nn.Conv2d(in_channels, width, 1, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, stride=stride, padding=1, bias=False)
        self.bn2 = FrozenBatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, out_channels, 1, bias=False)
        self.bn3 = FrozenBatchNorm2d(out_channels)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False),
                FrozenBatchNorm2d(out_channels),
            )

    def forward(self, x: Tensor) -> Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return F.relu(out + identity)


class ResNetBody(nn.Module):
    """ResNet trunk without the classifier; returns layer2..layer4 (strides 8, 16, 32)."""

    def __init__(self, depths: tuple[int, ...] = (3, 4, 6, 3), width: int = 64) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 7, stride=2, padding=3, bias=False)
        self.bn1 = FrozenBatchNorm2d(width)
        self.maxpool = nn.MaxPool2d(3, stride=2, padding=1)
        in_channels = width
        for index, depth in enumerate(depths):
            stage_width = width * 2**index
            blocks = []
            for block in range(depth):
                stride = 2 if (block == 0 and index > 0) else 1
                blocks.append(Bottleneck(in_channels, stage_width, stride))
                in_channels = stage_width * Bottleneck.expansion
            setattr(self, f"layer{index + 1}", nn.Sequential(*blocks))
        self.num_channels = [width * 2**i * Bottleneck.expansion for i in (1, 2, 3)]
        self.strides = [8, 16, 32]

    def forward(self, x: Tensor) -> list[Tensor]:
        x = self.maxpool(F.relu(self.bn1(self.conv1(x))))
        x = self.layer1(x)
        c3 = self.layer2(x)
        c4 = self.layer3(c3)
        c5 = self.layer4(c4)
        return [c3, c4, c5]


class SwinBody(nn.Module):
    """Swin transformer stages 2-4 through ``transformers.SwinBackbone``."""

    PRESETS: dict[str, dict[str, Any]] = {
        "swin_tiny": {"embed_dim": 96, "depths": [2, 2, 6, 2], "num_heads": [3, 6, 12, 24], "window_size": 7},
        "swin_large": {"embed_dim": 192, "depths": [2, 2, 18, 2], "num_heads": [6, 12, 24, 48], "window_size": 7},
    }

    def __init__(self, name: str, overrides: dict[str, Any] | None = None) -> None:
        super().__init__()
        from transformers import SwinBackbone, SwinConfig

        settings = {**self.PRESETS.get(name, self.PRESETS["swin_tiny"]), **(overrides or {})}
        settings.setdefault("out_features", ["stage2", "stage3", "stage4"])
        settings.setdefault("drop_path_rate", 0.2)
        self.model = SwinBackbone(SwinConfig(**settings))
        # The final LayerNorm of SwinModel only feeds its pooled output, never
        # the stage feature maps: drop it so no unused weights are carried.
        self.model.swin.layernorm = nn.Identity()
        dim = settings["embed_dim"]
        self.num_channels = [dim * 2, dim * 4, dim * 8]
        self.strides = [8, 16, 32]

    def forward(self, x: Tensor) -> list[Tensor]:
        return list(self.model(pixel_values=x).feature_maps)


class Backbone(nn.Module):
    """A trunk plus the per-level padding masks the transformer needs."""

    def __init__(self, name: str, resnet_depths: tuple[int, ...] = (3, 4, 6, 3), resnet_width: int = 64,
                 swin_config: dict[str, Any] | None = None) -> None:
        super().__init__()
        if name.startswith("resnet"):
            self.body: nn.Module = ResNetBody(resnet_depths, resnet_width)
            # As in DETR only layer2-4 are trained; the stem and layer1 stay at
            # their ImageNet weights.
            for param_name, param in self.body.named_parameters():
                if not param_name.startswith(("layer2", "layer3", "layer4")):
                    param.requires_grad_(False)
        elif name.startswith("swin"):
            self.body = SwinBody(name, swin_config)
        else:
            raise ValueError(f"unknown backbone {name!r}")
        self.name = name
        self.num_channels: list[int] = list(self.body.num_channels)
        self.strides: list[int] = list(self.body.strides)

    def forward(self, images: Tensor, mask: Tensor) -> list[tuple[Tensor, Tensor]]:
        features = self.body(images)
        out = []
        for feature in features:
            level_mask = F.interpolate(mask[None].float(), size=feature.shape[-2:]).to(torch.bool)[0]
            out.append((feature, level_mask))
        return out

    # ---------------------------------------------------------------- weights
    def load_pretrained(self, source: str) -> None:
        """Load trunk weights from a torchvision ``.pth``/safetensors file or a Hugging Face id/folder."""
        state = _read_backbone_state(source, self.name)
        own = self.body.state_dict()
        # ``fc.*`` (the ImageNet classifier) is expected to be left over.
        unexpected = [k for k in state if k not in own and not k.startswith("fc.")]
        missing = [k for k in own if k not in state and not k.endswith("relative_position_index")]
        wrong = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in own.items()
                 if k in state and state[k].shape != v.shape]
        if missing or unexpected or wrong:
            raise ValueError(
                f"backbone weights from {source} do not fit {self.name}: missing={missing[:8]} "
                f"unexpected={unexpected[:8]} shape mismatches={wrong[:8]}"
            )
        self.body.load_state_dict({k: v for k, v in state.items() if k in own}, strict=False)
        log.info("loaded %s backbone weights from %s", self.name, source)


def _read_backbone_state(source: str, name: str) -> dict[str, Tensor]:
    path = Path(source)
    if path.is_file():
        if path.suffix == ".safetensors":
            from safetensors.torch import load_file

            state = load_file(str(path))
        else:
            state = torch.load(path, map_location="cpu", weights_only=True)
            if isinstance(state, dict) and "model" in state and isinstance(state["model"], dict):
                state = state["model"]
        if name.startswith("swin"):
            # Microsoft's Swin checkpoints (and the official RLIPv2 body) use the original names.
            return swin_original_to_hf({k.removeprefix("model."): v for k, v in state.items()})
        return state
    # A Hugging Face id or a save_pretrained() folder.
    if name.startswith("resnet"):
        from transformers import ResNetModel

        hf = ResNetModel.from_pretrained(source)
        return hf_resnet_to_torchvision(hf.state_dict())
    from transformers import SwinBackbone

    swin = SwinBackbone.from_pretrained(source, out_features=["stage2", "stage3", "stage4"])
    return {f"model.{k}": v for k, v in swin.state_dict().items() if not k.startswith("swin.layernorm.")}


_HF_RESNET_RULES: list[tuple[str, str]] = [
    (r"^(?:resnet\.)?embedder\.embedder\.convolution\.", "conv1."),
    (r"^(?:resnet\.)?embedder\.embedder\.normalization\.", "bn1."),
    (r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.convolution\.", "layer{s}.{b}.downsample.0."),
    (r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.shortcut\.normalization\.", "layer{s}.{b}.downsample.1."),
    (r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.convolution\.", "layer{s}.{b}.conv{c}."),
    (r"^(?:resnet\.)?encoder\.stages\.(\d+)\.layers\.(\d+)\.layer\.(\d+)\.normalization\.", "layer{s}.{b}.bn{c}."),
]


def hf_resnet_to_torchvision(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename a transformers ``ResNetModel`` state dict to torchvision's names."""
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith("num_batches_tracked") or key.startswith(("pooler", "classifier")):
            continue
        for pattern, template in _HF_RESNET_RULES:
            match = re.match(pattern, key)
            if match:
                groups = match.groups()
                names = {}
                if groups:
                    names["s"] = int(groups[0]) + 1
                    names["b"] = int(groups[1])
                    if len(groups) > 2:
                        names["c"] = int(groups[2]) + 1
                out[template.format(**names) + key[match.end():]] = value
                break
        else:
            raise KeyError(f"unexpected key in a Hugging Face ResNet state dict: {key}")
    return out


_SWIN_RULES: list[tuple[str, str]] = [
    (r"^patch_embed\.proj\.", "model.swin.embeddings.patch_embeddings.projection."),
    (r"^patch_embed\.norm\.", "model.swin.embeddings.norm."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm1\.", "model.swin.encoder.layers.{0}.blocks.{1}.layernorm_before."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.norm2\.", "model.swin.encoder.layers.{0}.blocks.{1}.layernorm_after."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.proj\.", "model.swin.encoder.layers.{0}.blocks.{1}.attention.o_proj."),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.relative_position_bias_table$",
     "model.swin.encoder.layers.{0}.blocks.{1}.attention.relative_position_bias.relative_position_bias_table"),
    (r"^layers\.(\d+)\.blocks\.(\d+)\.mlp\.(fc[12])\.", "model.swin.encoder.layers.{0}.blocks.{1}.mlp.{2}."),
    (r"^layers\.(\d+)\.downsample\.", "model.swin.encoder.layers.{0}.downsample."),
]


def swin_original_to_hf(state: dict[str, Tensor]) -> dict[str, Tensor]:
    """Rename original Swin weights (``layers.0.blocks.0.attn.qkv`` ...) to ``SwinBody`` names.

    The fused ``qkv`` projection is split into query, key and value (its rows
    are stacked in that order); ``norm{i}`` (the detection variant's output
    norms) become ``hidden_states_norms.stage{i+1}``. Buffers recomputed at
    construction (``relative_position_index``, ``attn_mask``) and the ImageNet
    head are dropped.
    """
    out: dict[str, Tensor] = {}
    for key, value in state.items():
        if key.endswith(("relative_position_index", "attn_mask")) or key.startswith(("head.", "norm.")):
            continue
        qkv = re.match(r"^layers\.(\d+)\.blocks\.(\d+)\.attn\.qkv\.(weight|bias)$", key)
        if qkv:
            layer, block, kind = qkv.groups()
            prefix = f"model.swin.encoder.layers.{layer}.blocks.{block}.attention."
            for part, chunk in zip(("q_proj", "k_proj", "v_proj"), value.chunk(3, dim=0)):
                out[f"{prefix}{part}.{kind}"] = chunk.clone()
            continue
        norm = re.match(r"^norm(\d)\.(.+)$", key)
        if norm:
            out[f"model.hidden_states_norms.stage{int(norm.group(1)) + 1}.{norm.group(2)}"] = value
            continue
        for pattern, template in _SWIN_RULES:
            match = re.match(pattern, key)
            if match:
                out[template.format(*match.groups()) + key[match.end():]] = value
                break
        else:
            raise KeyError(f"unexpected key in a Swin state dict: {key}")
    return out
