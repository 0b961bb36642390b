"""The fast, latent-modulated decoder (LMF, docs/LIIF.md section 5).

A latent MLP runs once per latent code on [3x3 unfolded features, rel_cell] and emits a
16-value code plus a scale and shift for each of the six hidden layers of a tiny render
MLP (width 16) that runs per query. code_table also applies the render MLP's first layer
to the code and the cell, so per query only rel_coord remains to be added.
"""

from __future__ import annotations

import torch
from torch import nn

from .kernels import linear
from .liif import ContinuousImage


class FastLIIF(ContinuousImage):
    kind = "fast"

    def __init__(self, encoder: str = "edsr-baseline", encoder_args: dict | None = None,
                 latent_hidden: int = 208, code_dim: int = 16, width: int = 16, depth: int = 6,
                 local_ensemble: bool = True, feat_unfold: bool = True, cell_decode: bool = True,
                 residual: bool = False) -> None:
        super().__init__(encoder, encoder_args, local_ensemble, feat_unfold, cell_decode, residual)
        self.code_dim = code_dim
        self.width = width
        self.depth = depth
        n_out = code_dim + depth * width * 2
        self.latent_in = nn.Linear(self.feat_dim + 2, latent_hidden)
        self.latent_out = nn.Linear(latent_hidden, n_out)
        self.render_in = nn.Linear(code_dim + 2 + (2 if cell_decode else 0), width)
        self.render_hidden = nn.ModuleList([nn.Linear(width, width) for _ in range(depth - 1)])
        self.render_out = nn.Linear(width, 3)
        self._init_decoder()

    def _init_decoder(self) -> None:
        # With PyTorch's default init the latent MLP emits large shifts from the start and
        # whole 16-wide render layers die (trained that way, 6 of 16 units in the last two
        # layers never fired and the model plateaued ~0.4 dB over bicubic). Start the
        # modulations near identity and the render layers at He scale with zero-mean rows
        # (their inputs come out of a ReLU, all positive: a row with a negative mean would
        # start dead).
        with torch.no_grad():
            self.latent_out.weight[self.code_dim:].mul_(0.1)
            self.latent_out.bias[self.code_dim:].zero_()
            for layer in [self.render_in, *self.render_hidden]:
                nn.init.kaiming_normal_(layer.weight, nonlinearity="relu")
                layer.bias.fill_(0.01)
            for layer in self.render_hidden:
                layer.weight.sub_(layer.weight.mean(1, keepdim=True))

    @property
    def table_dim(self) -> int:
        return self.width + self.depth * self.width * 2

    @property
    def code_features_dim(self) -> int:
        return self.latent_in.out_features

    def code_features(self, feat: torch.Tensor) -> torch.Tensor:
        """The latent MLP's feature term (B,208,h,w); zoom-independent, cached per tile."""
        return self._first_conv(feat, self.code_features_weight)

    @property
    def code_features_weight(self) -> torch.Tensor:
        """The latent MLP's first weight, whose feature columns code_features applies."""
        return self.latent_in.weight

    def table_from_features(self, pre: torch.Tensor, rel_cell: torch.Tensor, affine=None) -> torch.Tensor:
        """pre (B,h,w,208) from code_features, rel_cell (B,2) -> (B,h,w,16 + 192) per code:
        the render MLP's first-layer pre-activation without the rel_coord term, then for
        each hidden layer the modulation folded with that layer's bias: h -> (W h) * scale
        + shift, where scale = 1 + m_scale and shift = b * (1 + m_scale) + m_shift.
        All of that is affine in the latent MLP's hidden layer, so it is one matmul.
        `affine`: table_affine(rel_cell), when the caller computed it once for many blocks."""
        const, weight, bias = affine if affine is not None else self.table_affine(rel_cell)
        hidden = (pre + const.to(pre.dtype)[:, None, None, :]).relu_()
        if bias.shape[0] == 1:
            return linear(hidden, weight.to(hidden.dtype), bias[0].to(hidden.dtype))
        return linear(hidden, weight.to(hidden.dtype)) + bias.to(hidden.dtype)[:, None, None, :]

    def table_affine(self, rel_cell: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """(const (B, hidden), weight (208, hidden), bias (B, 208)): the latent MLP's hidden
        layer is relu(pre + const), and table = hidden @ weight.T + bias."""
        w = self.latent_in.weight
        const = self.latent_in.bias + rel_cell.to(w.dtype) @ w[:, self.feat_dim:].t()
        wo, bo = self.latent_out.weight, self.latent_out.bias
        c, d, k = self.code_dim, self.depth, self.width
        wr = self.render_in.weight
        w_first = wr[:, :c] @ wo[:c]
        b_first = (wr[:, :c] @ bo[:c] + self.render_in.bias).expand(rel_cell.shape[0], -1)
        if self.cell_decode:
            b_first = b_first + rel_cell.to(wr.dtype) @ wr[:, c + 2:].t()
        w_mod, b_mod = wo[c:].unflatten(0, (d, 2, k)), bo[c:].unflatten(0, (d, 2, k))
        layer_bias = torch.stack([torch.zeros_like(self.render_in.bias)] + [m.bias for m in self.render_hidden])
        b_scale = b_mod[:, 0] + 1
        w_shift = w_mod[:, 1] + layer_bias[..., None] * w_mod[:, 0]
        b_shift = b_mod[:, 1] + layer_bias * b_scale
        weight = torch.cat((w_first, torch.stack((w_mod[:, 0], w_shift), 1).flatten(0, 2)))
        mods = torch.stack((b_scale, b_shift), 1).flatten()
        return const, weight, torch.cat((b_first, mods.expand(rel_cell.shape[0], -1)), 1)

    @property
    def table_parts(self) -> tuple[int, int]:
        """The table's last dimension as (parts, width): the first-layer term, then a
        scale and a shift per hidden layer, each `width` wide."""
        return 1 + 2 * self.depth, self.width

    def decode(self, codes: torch.Tensor, rel_y: torch.Tensor, rel_x: torch.Tensor) -> torch.Tensor:
        """codes (..., 208) from code_table; rel_y, rel_x (..., 1); broadcast together
        -> raw prediction (..., 3)."""
        return self.project(self.decode_hidden(codes.unflatten(-1, self.table_parts), rel_y, rel_x))

    def decode_hidden(self, parts: torch.Tensor, rel_y: torch.Tensor, rel_x: torch.Tensor) -> torch.Tensor:
        """The render MLP up to its last hidden layer -> (..., 16); `project` finishes it.
        parts (..., 13, 16): the codes' table split as table_parts (any strides: a renderer
        passes slices of a table stored part by part, so each part is contiguous per code).
        The output layer is affine, so a renderer can blend the ensemble members' hidden
        layers and project once."""
        w_rel = self.render_in.weight[:, self.code_dim:self.code_dim + 2]
        # Layer 0's modulation is distributed over the sum (first + x term + y term): the
        # x part is per column and the y part per row, both small when codes broadcast,
        # so one full-size add (with the ReLU) builds the layer's output.
        scale = parts[..., 1, :]
        x_part = torch.addcmul(parts[..., 2, :], parts[..., 0, :] + rel_x * w_rel[:, 1], scale)
        y_part = (rel_y * w_rel[:, 0]) * scale
        # rendering writes each layer over its input; training needs the inputs for autograd
        in_place = not torch.is_grad_enabled()
        if in_place:  # into a row-major buffer: a broadcast sum may come out permuted, the matmuls want rows
            h = x_part.new_empty(torch.broadcast_shapes(x_part.shape, y_part.shape))
            if h.device.type == "cpu" and h.dtype == torch.float32:  # a fused add + ReLU exists there
                torch.ops.aten._add_relu.out(x_part, y_part, out=h)
            else:
                torch.add(x_part, y_part, out=h).relu_()
        else:
            h = torch.relu(x_part + y_part)
        for i in range(1, self.depth):
            h = linear(h, self.render_hidden[i - 1].weight)
            h = torch.addcmul(parts[..., 2 + 2 * i, :], h, parts[..., 1 + 2 * i, :], out=h if in_place else None).relu_()
        return h

    def project(self, hidden: torch.Tensor) -> torch.Tensor:
        return linear(hidden, self.render_out.weight, self.render_out.bias)

    def plain_decode(self, q_feat: torch.Tensor, rel: torch.Tensor, rel_cell: torch.Tensor) -> torch.Tensor:
        """The formulation without precomputation: latent MLP on the query's own unfolded
        feature, then the modulated render MLP."""
        out = self.latent_out(torch.relu(self.latent_in(torch.cat((q_feat, rel_cell), -1))))
        code, mods = out[:, :self.code_dim], out[:, self.code_dim:].reshape(-1, self.depth, 2, self.width)
        parts = [code, rel] + ([rel_cell] if self.cell_decode else [])
        h = self.render_in(torch.cat(parts, -1))
        for i in range(self.depth):
            if i:
                h = self.render_hidden[i - 1](h)
            h = torch.relu(h * (1 + mods[:, i, 0]) + mods[:, i, 1])
        return self.render_out(h)
