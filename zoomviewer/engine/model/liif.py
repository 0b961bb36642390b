"""The LIIF decoder (docs/LIIF.md section 1) and the query path shared by every decoder.

A decoder is split into two exact halves so that rendering can do the expensive,
query-independent part once per latent code:
  code_table(feat, rel_cell)      -> the code table: per-code values (for LIIF the first
                                     layer applied to the 3x3 unfolded features, plus the
                                     cell term and bias; docs/LIIF.md section 6)
  decode(codes, rel_y, rel_x)     -> colour prediction for queries that use those codes
                                     at those rel_coords (y and x, in codes)
`ensemble_axis` and `blend_weights` apply the local ensemble's rules (engine/ensemble.py)
to torch tensors; `stacked_blend_weights` is blend_weights laid out for the renderer.
`LIIF.query` composes everything for arbitrary coordinates (training, evaluation).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .. import ensemble
from .encoders import make_encoder
from .kernels import linear


class MLP(nn.Module):
    """Linear/ReLU stack with the published state-dict names (`layers.{0,2,4,...}`)."""

    def __init__(self, in_dim: int, out_dim: int, hidden: list[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = in_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        layers.append(nn.Linear(last, out_dim))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)


def ensemble_axis(coord: torch.Tensor, n: int, local_ensemble: bool) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """For normalised coordinates along one axis of an n-code grid, the (code index,
    rel_coord) of each ensemble member (ensemble.axis_members): shifts -1 then +1, or one
    unshifted member. The chosen codes are those grid_sample(nearest) picks in the
    reference implementation."""
    members = ensemble.axis_members(coord.float(), n, local_ensemble, torch.clamp, torch.round)
    return [(index.long(), rel) for index, rel in members]


def blend_weights(rel_y: list[torch.Tensor], rel_x: list[torch.Tensor]) -> list[torch.Tensor]:
    """Local-ensemble weights (ensemble.blend_weights), member order (y0,x0), (y0,x1),
    (y1,x0), (y1,x1): each member is weighted by the area of the diagonally opposite one.
    Inputs broadcast."""
    return ensemble.blend_weights(rel_y, rel_x, torch.ones_like)


def stacked_blend_weights(ry: torch.Tensor, rx: torch.Tensor) -> torch.Tensor:
    """blend_weights laid out like the members: rel coords (A, 1, ...) of the y-members and
    (1, B, ...) of the x-members -> weights (A, B, ...), each member weighted by the area
    of the diagonally opposite one. In place on two small products, and the four areas
    summed in torch's order (which may differ from blend_weights' in the last bit)."""
    if ry.shape[0] == 1 and rx.shape[1] == 1:
        return torch.ones_like(ry * rx)
    opposite = (ry.flip(0) * rx.flip(1)).abs_().add_(ensemble.AREA_EPS)  # the flips are of the small factors
    return opposite.div_(opposite.sum((0, 1)))


def unfold_weight(weight: torch.Tensor, channels: int, unfold: bool) -> torch.Tensor:
    """A Linear weight over unfolded features (c*9 + 3*dy + dx order) as a conv kernel."""
    k = 3 if unfold else 1
    return weight.reshape(weight.shape[0], channels, k, k)


def bilinear_base(inp: torch.Tensor, y: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """Bilinear sample (align_corners=False, border clamp) of inp (B,3,H,W) at normalised
    coordinates y (B,Q), x (B,Q) -> (B,Q,3). The residual option adds it to the decoder."""
    grid = torch.stack((x, y), -1).unsqueeze(1).float()
    out = F.grid_sample(inp, grid, mode="bilinear", padding_mode="border", align_corners=False)
    return out[:, :, 0, :].permute(0, 2, 1)


class ContinuousImage(nn.Module):
    """What every decoder shares: the encoder, the paper's switches, the query path."""

    def __init__(self, encoder: str, encoder_args: dict | None, local_ensemble: bool, feat_unfold: bool,
                 cell_decode: bool, residual: bool) -> None:
        super().__init__()
        self.encoder = make_encoder(encoder, encoder_args)
        self.local_ensemble = local_ensemble
        self.feat_unfold = feat_unfold
        self.cell_decode = cell_decode
        self.residual = residual
        c = self.encoder.out_dim
        self.feat_dim = c * 9 if feat_unfold else c

    def code_table(self, feat: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        """feat (B,C,h,w), zero padded at its own border; rel_cell (B,2) -> (B,h,w,D): all
        the per-code work of a decoder, so that a query only adds its rel_coord."""
        return self.table_from_features(self.code_features(feat).permute(0, 2, 3, 1), rel_cell)

    def _first_conv(self, feat: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """A Linear over 3x3 unfolded features, as the convolution it equals."""
        kernel = unfold_weight(weight[:, :self.feat_dim], feat.shape[1], self.feat_unfold)
        return F.conv2d(feat, kernel.to(feat.dtype), padding=kernel.shape[-1] // 2)

    def code_features_kernel(self) -> torch.Tensor:
        """code_features as a convolution kernel (D, C, k, k), k = 3 with feat_unfold, else
        1: code_features(feat) == conv2d(feat, kernel, padding=k // 2), no bias (so another
        convolution, the Winograd encoder's, can compute it)."""
        return unfold_weight(self.code_features_weight[:, :self.feat_dim], self.encoder.out_dim, self.feat_unfold)

    def query(self, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
              feat: torch.Tensor | None = None) -> torch.Tensor:
        """Predict normalised colours. inp (B,3,H,W) normalised; coord, cell (B,Q,2)
        normalised (y, x). One cell per batch item (as in training and in renders)."""
        return query_decoder(self, inp, coord, cell, feat)


class LIIF(ContinuousImage):
    """Encoder + MLP decoder. Attribute names match the published checkpoints."""

    kind = "liif"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 hidden: list[int] | None = None, local_ensemble: bool = True,
                 feat_unfold: bool = True, cell_decode: bool = True, residual: bool = False) -> None:
        super().__init__(encoder, encoder_args, local_ensemble, feat_unfold, cell_decode, residual)
        in_dim = self.feat_dim + 2 + (2 if cell_decode else 0)
        self.imnet = MLP(in_dim, 3, hidden or [256, 256, 256, 256])

    @property
    def table_dim(self) -> int:
        return self.imnet.layers[0].out_features

    @property
    def code_features_dim(self) -> int:
        return self.imnet.layers[0].out_features

    def code_features(self, feat: torch.Tensor) -> torch.Tensor:
        """The first layer's feature term W_f * unfold(feat), (B,D,h,w) with D = table_dim
        (256 in the published models). It does not depend on the zoom, so a latent can
        keep it per tile."""
        return self._first_conv(feat, self.code_features_weight)

    @property
    def code_features_weight(self) -> torch.Tensor:
        """The first layer's weight, whose feature columns code_features applies."""
        return self.imnet.layers[0].weight

    def table_affine(self, rel_cell: torch.Tensor) -> torch.Tensor:
        """The zoom's part of the table: first-layer bias plus cell term, (B, D)."""
        first = self.imnet.layers[0]
        const = first.bias.expand(rel_cell.shape[0], -1)
        if self.cell_decode:
            const = const + rel_cell.to(first.weight.dtype) @ first.weight[:, self.feat_dim + 2:].t()
        return const

    def table_from_features(self, pre: torch.Tensor, rel_cell: torch.Tensor, affine=None) -> torch.Tensor:
        """pre (B,h,w,D) from code_features -> table (B,h,w,D): plus cell term and bias.
        `affine`: table_affine(rel_cell), when the caller computed it once for many blocks."""
        const = affine if affine is not None else self.table_affine(rel_cell)
        return pre + const.to(pre.dtype)[:, None, None, :]

    @property
    def table_parts(self) -> tuple[int, int]:
        """The table's last dimension as (parts, width): one part, the first layer."""
        return 1, self.table_dim

    def decode(self, codes: torch.Tensor, rel_y: torch.Tensor, rel_x: torch.Tensor) -> torch.Tensor:
        """codes (..., D) from code_table; rel_y, rel_x (..., 1); all broadcast
        together -> raw prediction (..., 3). Broadcasting lets a renderer pass one code row
        for a whole run of output rows instead of a gathered copy per query."""
        return self.project(self.decode_hidden(codes[..., None, :], rel_y, rel_x))

    def decode_hidden(self, parts: torch.Tensor, rel_y: torch.Tensor, rel_x: torch.Tensor) -> torch.Tensor:
        """decode up to the last hidden layer (..., hidden width); `project` finishes it
        (the output layer is affine, so a renderer can blend hidden layers and project
        once). parts (..., 1, D): the codes split as table_parts."""
        w_rel = self.imnet.layers[0].weight[:, self.feat_dim:self.feat_dim + 2]
        h = ((parts[..., 0, :] + rel_x * w_rel[:, 1]) + rel_y * w_rel[:, 0]).relu_()
        for layer in self.imnet.layers[2:-1]:
            if isinstance(layer, nn.Linear):
                h = linear(h, layer.weight, layer.bias, relu=True)  # every hidden Linear is followed by a ReLU
        return h

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        last = self.imnet.layers[-1]
        return linear(hidden, last.weight, last.bias)

    def plain_decode(self, q_feat: torch.Tensor, rel: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        """The paper's formulation, no precomputation: MLP on [unfolded feature, rel, cell]."""
        parts = [q_feat, rel] + ([rel_cell] if self.cell_decode else [])
        return self.imnet(torch.cat(parts, -1))

def query_decoder(model: nn.Module, inp: torch.Tensor, coord: torch.Tensor, cell: torch.Tensor,
                  feat: torch.Tensor | None = None) -> torch.Tensor:
    """Shared query path for any decoder with code_table/decode (LIIF and fast)."""
    if feat is None:
        feat = model.encoder(inp)
    b, _, h, w = feat.shape
    rel_cell = cell[:, 0, :] * torch.tensor([h, w], dtype=cell.dtype, device=cell.device)
    table = model.code_table(feat, rel_cell).reshape(b, h * w, -1)
    ys = ensemble_axis(coord[..., 0], h, model.local_ensemble)
    xs = ensemble_axis(coord[..., 1], w, model.local_ensemble)
    weights = blend_weights([r for _, r in ys], [r for _, r in xs])
    out = 0
    k = 0
    for iy, ry in ys:
        for ix, rx in xs:
            flat = (iy * w + ix)
            codes = torch.gather(table, 1, flat.unsqueeze(-1).expand(-1, -1, table.shape[-1]))
            pred = model.decode(codes, ry.unsqueeze(-1), rx.unsqueeze(-1))
            out = out + pred * weights[k].unsqueeze(-1)
            k += 1
    if model.residual:
        out = out + bilinear_base(inp, coord[..., 0], coord[..., 1])
    return out
