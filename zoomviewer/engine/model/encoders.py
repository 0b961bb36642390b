"""Encoders that turn an RGB image into a 64-channel latent grid (no upsampling tail).

EDSR-baseline and RDN (config B), with the state-dict names of the published LIIF
checkpoints, so that their weights load as they are (docs/LIIF.md section 2); and the
preview encoder, a narrow EDSR distilled from the fast model's encoder, whose latent the
fast decoder reads while the full one is being encoded (docs/ARCHITECTURE.md, "preview").
"""

from __future__ import annotations

import torch
from torch import nn


def _conv(cin: int, cout: int, k: int = 3) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, k, padding=k // 2)


class _MeanShift(nn.Conv2d):
    """Present in published files, never applied in forward (kept so state dicts match)."""

    def __init__(self) -> None:
        super().__init__(3, 3, 1)
        self.requires_grad_(False)


class _ResBlock(nn.Module):
    def __init__(self, n: int) -> None:
        super().__init__()
        self.body = nn.Sequential(_conv(n, n), nn.ReLU(True), _conv(n, n))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class EDSRBaseline(nn.Module):
    """16 residual blocks of 64 channels; 34 stacked 3x3 convolutions."""

    name = "edsr-baseline"
    out_dim = 64
    receptive_radius = 34

    def __init__(self, n_resblocks: int = 16, n_feats: int = 64) -> None:
        super().__init__()
        self.sub_mean = _MeanShift()
        self.add_mean = _MeanShift()
        self.head = nn.Sequential(_conv(3, n_feats))
        self.body = nn.Sequential(*[_ResBlock(n_feats) for _ in range(n_resblocks)],
                                  _conv(n_feats, n_feats))
        self.out_dim = n_feats
        self.receptive_radius = 2 * n_resblocks + 2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return head + self.body(head)

    def encode(self, x: torch.Tensor, step=None) -> torch.Tensor:
        """forward, telling `step(fraction)` after each block (a long encoding's progress,
        and a chance to cancel it between blocks)."""
        return _stepped(self.head(x), self.body, step, lambda head, out: head + out)


def _stepped(first: torch.Tensor, layers, step, finish) -> torch.Tensor:
    out = first
    for k, layer in enumerate(layers, 1):
        out = layer(out)
        if step is not None:
            step(k / len(layers))
    return finish(first, out)


class _DenseLayer(nn.Module):
    def __init__(self, cin: int, growth: int) -> None:
        super().__init__()
        self.conv = nn.Sequential(_conv(cin, growth), nn.ReLU())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.cat((x, self.conv(x)), 1)


class _RDB(nn.Module):
    def __init__(self, g0: int, growth: int, n_layers: int) -> None:
        super().__init__()
        self.convs = nn.Sequential(*[_DenseLayer(g0 + i * growth, growth) for i in range(n_layers)])
        self.LFF = nn.Conv2d(g0 + n_layers * growth, g0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.LFF(self.convs(x)) + x


class RDN(nn.Module):
    """Residual dense network, config B: 16 blocks x 8 layers, G = G0 = 64."""

    name = "rdn"

    def __init__(self, n_blocks: int = 16, n_layers: int = 8, g0: int = 64, growth: int = 64) -> None:
        super().__init__()
        self.SFENet1 = _conv(3, g0)
        self.SFENet2 = _conv(g0, g0)
        self.RDBs = nn.ModuleList([_RDB(g0, growth, n_layers) for _ in range(n_blocks)])
        self.GFF = nn.Sequential(nn.Conv2d(n_blocks * g0, g0, 1), _conv(g0, g0))
        self.out_dim = g0
        self.receptive_radius = 2 + n_blocks * n_layers + 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        f1 = self.SFENet1(x)
        x = self.SFENet2(f1)
        outs = []
        for block in self.RDBs:
            x = block(x)
            outs.append(x)
        return self.GFF(torch.cat(outs, 1)) + f1


class PreviewEncoder(nn.Module):
    """A narrow EDSR (3 residual blocks of 32 channels) and a 3x3 projection to the
    64-channel latent of the encoder it is distilled from: about 84 k multiply-adds per
    source pixel, 1/14 of EDSR-baseline's 1.2 M, so a view's first sharp picture does not
    wait for the full encoder."""

    name = "preview"

    def __init__(self, n_resblocks: int = 3, n_feats: int = 32, out_dim: int = 64) -> None:
        super().__init__()
        self.head = _conv(3, n_feats)
        self.body = nn.Sequential(*[_ResBlock(n_feats) for _ in range(n_resblocks)], _conv(n_feats, n_feats))
        self.project = _conv(n_feats, out_dim)
        self.out_dim = out_dim
        self.receptive_radius = 2 * n_resblocks + 3

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        head = self.head(x)
        return self.project(head + self.body(head))

    def encode(self, x: torch.Tensor, step=None) -> torch.Tensor:
        """forward, telling `step(fraction)` after each block."""
        return _stepped(self.head(x), self.body, step, lambda head, out: self.project(head + out))


ENCODERS = {"edsr-baseline": EDSRBaseline, "rdn": RDN, "preview": PreviewEncoder}


def make_encoder(name: str, args: dict | None = None) -> nn.Module:
    args = dict(args or {})
    args.pop("no_upsampling", None)
    if name not in ENCODERS:
        raise ValueError(f"unknown encoder {name!r} (known: {', '.join(ENCODERS)})")
    return ENCODERS[name](**args)
