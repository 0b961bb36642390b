"""How one band of a photo becomes latent codes and the decoder's first-layer term (its
zoom-independent `code_features`): the encoder run this machine does fastest, chosen by
measurement (model/layout.py: torch in channels-last or contiguous memory, or the Winograd
encoder in C, model/winograd.py), with the term in the same C run where the C code can do
it. Latent (latent.py) decides which bands to encode and caches what comes out, tile by
tile.
"""

from __future__ import annotations

import threading
import weakref

import torch

from .model.layout import LAYOUTS, encoder_layout
from .model.winograd import WinogradEncoder, winograd_encoder


# model -> ((its first-layer weight and that weight's version, the C encoder), the term's
# transform): made once per model and weights (a weight changed in place bumps its version)
_terms: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()
_terms_lock = threading.Lock()


def _term(model: torch.nn.Module, encoder: WinogradEncoder):
    """The model's first-layer term for `encoder` (WinogradEncoder.term), or None."""
    weight = model.code_features_weight
    key = (id(weight), weight._version, encoder)
    with _terms_lock:
        kept = _terms.get(model)
    if kept is not None and kept[0] == key:
        return kept[1]
    with torch.no_grad():
        term = encoder.term(model.code_features_kernel().float())
    with _terms_lock:
        _terms[model] = (key, term)
    return term


class BandEncoder:
    """A model's encoder and first-layer term, set up for `device` once (the model is put
    in the chosen layout's memory format)."""

    def __init__(self, model: torch.nn.Module, device: torch.device) -> None:
        self.model = model
        self.layout = encoder_layout(model.encoder, device)
        model.to(memory_format=LAYOUTS[self.layout])
        # the encoder in C where that measured fastest
        self._winograd = winograd_encoder(model.encoder, device) if self.layout == "winograd" else None
        # and the decoder's first-layer term with it, where it is a 3x3 convolution the C
        # code can do (the fast model's and LIIF's; the preview's reads each code alone).
        # oneDNN's 3x3 64 -> 208 convolution took 1.4-1.6 s/MP with AVX2 kernels (2-core
        # Xeon), up to a fifth of the whole encoding.
        self._term = None
        if self._winograd is not None and hasattr(model, "code_features_kernel"):
            self._term = _term(model, self._winograd)

    @torch.no_grad()
    def encode(self, x: torch.Tensor, tiles: tuple[int, int, int, int], crop: tuple[int, int, int, int],
               step=None) -> tuple[torch.Tensor, torch.Tensor]:
        """x (1, 3, h, w): the normalised source of the `crop` box (y0, y1, x0, x1 in the
        photo), which holds the `tiles` box and the encoder's halo around it, clipped to the
        photo -> (the latent of the crop (1, C, h, w); the first-layer term over the tiles
        (th, tw, D), channels-last, so that each tile can keep a view of it). `step` is told
        the encoder's progress, where it can (`encode`), and may raise to cancel."""
        (y0, y1, x0, x1), (cy0, cy1, cx0, cx1) = tiles, crop
        x = x.contiguous(memory_format=LAYOUTS[self.layout])
        if self._term is not None:
            feat, pre = self._winograd.encode_with_term(x, self._term, (y0 - cy0, y1 - cy0), step)
            return feat, pre[y0 - cy0:y1 - cy0, x0 - cx0:x1 - cx0]
        encoder = self.model.encoder
        if self._winograd is not None:
            feat = self._winograd.encode(x, step)
        else:
            feat = encoder.encode(x, step) if step is not None and hasattr(encoder, "encode") else encoder(x)
        # the term only where the tiles are, and the ring of codes its 3x3 reads: the halo's
        # would be thrown away
        fy0, fx0 = max(y0 - 1, 0), max(x0 - 1, 0)
        fy1, fx1 = min(y1 + 1, cy1), min(x1 + 1, cx1)
        pre = self.model.code_features(feat[:, :, fy0 - cy0:fy1 - cy0, fx0 - cx0:fx1 - cx0])[0]
        pre = pre[:, y0 - fy0:y1 - fy0, x0 - fx0:x1 - fx0].permute(1, 2, 0)
        if pre.stride(-1) != 1:
            pre = pre.contiguous()     # a device or layout that did not give channels-last
        return feat, pre
