"""Degradations of the low-resolution side, for the restore model (docs/RESTORE.md):
the random chain training draws from, and the named, deterministic protocols
`zoomviewer eval --degrade NAME` applies to a benchmark's LR images.

A user's old photo *is* the low-resolution side: its grain, scanner noise, soft focus
and JPEG blocks sit on its own pixels. So every degradation here acts on the LR image at
LR size (after the downscale), and the HR target stays the clean photo. Everything is
numpy + Pillow on uint8 HxWx3 arrays, driven by a numpy Generator, so a seed fixes it.
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image

RESIZE_KERNELS = (Image.BICUBIC, Image.BILINEAR, Image.BOX, Image.LANCZOS)


def gaussian_kernel(sigma_x: float, sigma_y: float, theta: float) -> np.ndarray:
    """A normalised 2-D Gaussian kernel, anisotropic (sigma_x along angle theta, sigma_y
    across it); odd size covering 3 sigma of the wider axis."""
    radius = max(1, int(np.ceil(3 * max(sigma_x, sigma_y))))
    ax = np.arange(-radius, radius + 1, dtype=np.float64)
    yy, xx = np.meshgrid(ax, ax, indexing="ij")
    c, s = np.cos(theta), np.sin(theta)
    u, v = c * xx + s * yy, -s * xx + c * yy
    k = np.exp(-0.5 * ((u / sigma_x) ** 2 + (v / sigma_y) ** 2))
    return k / k.sum()


def blur(img: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """`img` (float HxWx3) convolved with `kernel`, borders reflected."""
    r = kernel.shape[0] // 2
    pad = np.pad(img, ((r, r), (r, r), (0, 0)), mode="reflect")
    h, w = img.shape[:2]
    out = np.zeros_like(img)
    # a sum of shifted copies: the kernels are at most ~13x13 on 48 px patches, where this
    # beats an FFT and needs nothing beyond numpy
    for dy in range(kernel.shape[0]):
        for dx in range(kernel.shape[1]):
            out += kernel[dy, dx] * pad[dy:dy + h, dx:dx + w]
    return out


def gaussian_noise(img: np.ndarray, sigma: float, grey: bool, rng: np.random.Generator) -> np.ndarray:
    """Additive Gaussian noise of `sigma` (0-255 units), the same in every channel if `grey`."""
    shape = img.shape[:2] + ((1,) if grey else (3,))
    return img + rng.normal(0.0, sigma, shape)


def poisson_noise(img: np.ndarray, scale: float, grey: bool, rng: np.random.Generator) -> np.ndarray:
    """Shot noise: photon counts of the 0-255 brightness, so its standard deviation is
    `scale` x sqrt(brightness) (Real-ESRGAN's form)."""
    base = np.clip(img.mean(-1, keepdims=True) if grey else img, 0, 255)
    return img + scale * (rng.poisson(base) - base)


def film_grain(img: np.ndarray, strength: float, size: float, rng: np.random.Generator) -> np.ndarray:
    """Luminance-dependent, spatially correlated grain: strongest in the mid-tones (as in
    developed film), clumped over `size` pixels, `strength` in 0-255 units."""
    field = rng.normal(0.0, 1.0, img.shape[:2] + (1,))
    if size > 0.3:
        field = blur(field, gaussian_kernel(size, size, 0.0))
        field /= max(float(field.std()), 1e-6)
    y = np.clip(img.mean(-1, keepdims=True) / 255.0, 0, 1)
    return img + strength * (0.25 + 3.0 * y * (1.0 - y)) * field


def jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    """A JPEG round trip at `quality` (4:2:0 chroma, as cameras and scanners save)."""
    buf = io.BytesIO()
    Image.fromarray(to_uint8(img)).save(buf, format="JPEG", quality=int(quality))
    buf.seek(0)
    with Image.open(buf) as im:
        return np.asarray(im.convert("RGB"), dtype=np.float64)


def to_uint8(img: np.ndarray) -> np.ndarray:
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def resize(img: np.ndarray, size: tuple[int, int], kernel) -> np.ndarray:
    """`img` (float or uint8) resized to (w, h) with a Pillow kernel, as float."""
    return np.asarray(Image.fromarray(to_uint8(img)).resize(size, kernel), dtype=np.float64)


# -- the training chain ---------------------------------------------------------------------

TRAINING_CHAIN = ("p 0.15 clean (bicubic only); else: downscale with a random kernel "
                  "(bicubic, bilinear, box, Lanczos); p 0.7 blur (Gaussian, sigma 0.2-1.5 LR px, "
                  "anisotropic with p 0.5); p 0.8 noise (Gaussian sigma 1-30 of 255, grey with p 0.4, "
                  "or Poisson scale 0.05-3, p 0.3); p 0.3 film grain (strength 2-14, clump 0.4-1.2 px); "
                  "p 0.8 JPEG q 30-95; with p 0.5 a second pass: blur p 0.5 (sigma 0.2-1.0), "
                  "down to 50-100 % and back with random kernels, noise p 0.5 (sigma 1-20), JPEG q 30-95")


def _random_blur(img, rng, hi):
    sx = rng.uniform(0.2, hi)
    sy = rng.uniform(0.2, hi) if rng.random() < 0.5 else sx
    return blur(img, gaussian_kernel(sx, sy, rng.uniform(0, np.pi)))


def _random_noise(img, rng, hi):
    grey = rng.random() < 0.4
    if rng.random() < 0.3:
        return poisson_noise(img, rng.uniform(0.05, 3.0), grey, rng)
    return gaussian_noise(img, rng.uniform(1.0, hi), grey, rng)


def _wide_chain(hr: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    if rng.random() < 0.15:
        return np.asarray(Image.fromarray(hr).resize((n, n), Image.BICUBIC))
    kernels = RESIZE_KERNELS
    img = np.asarray(Image.fromarray(hr).resize((n, n), kernels[rng.integers(len(kernels))]),
                     dtype=np.float64)
    if rng.random() < 0.7:
        img = _random_blur(img, rng, 1.5)
    if rng.random() < 0.8:
        img = _random_noise(img, rng, 30.0)
    if rng.random() < 0.3:
        img = film_grain(img, rng.uniform(2.0, 14.0), rng.uniform(0.4, 1.2), rng)
    if rng.random() < 0.8:
        img = jpeg(img, rng.integers(30, 96))
    if rng.random() < 0.5:
        if rng.random() < 0.5:
            img = _random_blur(img, rng, 1.0)
        m = max(8, int(round(n * rng.uniform(0.5, 1.0))))
        img = resize(img, (m, m), kernels[rng.integers(len(kernels))])
        img = resize(img, (n, n), kernels[rng.integers(len(kernels))])
        if rng.random() < 0.5:
            img = _random_noise(img, rng, 20.0)
        img = jpeg(img, rng.integers(30, 96))
    return to_uint8(img)


SCAN_CHAIN = ("p 0.1 clean (bicubic only); else: downscale with a random kernel (bicubic, bilinear, "
              "box, Lanczos); p 0.9 blur (Gaussian, sigma 0.2-1.2 LR px, anisotropic with p 0.5); "
              "p 0.9 noise (Gaussian sigma 1-16 of 255, grey with p 0.4, or Poisson scale 0.05-3, "
              "p 0.3); p 0.3 film grain (strength 2-10, clump 0.4-1.2 px); p 0.9 JPEG q 30-90; "
              "with p 0.2 a light second pass: down to 70-100 % and back with random kernels, "
              "JPEG q 50-95")


def _scan_chain(hr: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    # The wide chain spreads the model over degradations far heavier than a scanned print
    # (noise to 30, JPEG to 30, second passes half the time); this one draws most patches
    # from around what scans look like, with margins on every side of the eval's `scan`.
    if rng.random() < 0.1:
        return np.asarray(Image.fromarray(hr).resize((n, n), Image.BICUBIC))
    kernels = RESIZE_KERNELS
    img = np.asarray(Image.fromarray(hr).resize((n, n), kernels[rng.integers(len(kernels))]),
                     dtype=np.float64)
    if rng.random() < 0.9:
        img = _random_blur(img, rng, 1.2)
    if rng.random() < 0.9:
        img = _random_noise(img, rng, 16.0)
    if rng.random() < 0.3:
        img = film_grain(img, rng.uniform(2.0, 10.0), rng.uniform(0.4, 1.2), rng)
    if rng.random() < 0.9:
        img = jpeg(img, rng.integers(30, 91))
    if rng.random() < 0.2:
        m = max(8, int(round(n * rng.uniform(0.7, 1.0))))
        img = resize(img, (m, m), kernels[rng.integers(len(kernels))])
        img = resize(img, (n, n), kernels[rng.integers(len(kernels))])
        img = jpeg(img, rng.integers(50, 96))
    return to_uint8(img)


CHAINS = {"wide": (_wide_chain, TRAINING_CHAIN), "scan": (_scan_chain, SCAN_CHAIN)}


def degrade_for_training(hr: np.ndarray, n: int, rng: np.random.Generator, chain: str = "wide") -> np.ndarray:
    """A degraded n x n uint8 LR image of the uint8 HR crop `hr`, drawn from the training
    chain `chain` (CHAINS: "wide", Real-ESRGAN's second-order model at LR size plus grain,
    described by TRAINING_CHAIN; "scan", centred on scanned prints, SCAN_CHAIN)."""
    if chain not in CHAINS:
        raise ValueError(f"unknown training chain {chain!r} (known: {', '.join(CHAINS)})")
    return CHAINS[chain][0](hr, n, rng)


# -- named evaluation protocols -------------------------------------------------------------

def _scan(lr: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    img = lr.astype(np.float64)
    s = rng.uniform(0.4, 1.0)
    img = blur(img, gaussian_kernel(s, s, 0.0))
    img = gaussian_noise(img, rng.uniform(4.0, 12.0), False, rng)
    return to_uint8(jpeg(img, int(rng.integers(40, 76))))


PROTOCOLS = {
    "scan": (_scan, "a scanned print saved as JPEG: Gaussian blur sigma U(0.4, 1.0) LR px, "
                    "colour Gaussian noise sigma U(4, 12) of 255, JPEG quality U{40..75}; "
                    "drawn from numpy default_rng([2026, image index, scale x 1000])"),
}


def degrade_protocol(name: str, lr: np.ndarray, index: int, scale: float) -> np.ndarray:
    """The uint8 LR image `lr` degraded by protocol `name`, the draw fixed by the image's
    index in its set (sorted by name) and the scale, so every run gets the same images."""
    if name not in PROTOCOLS:
        raise ValueError(f"unknown degradation {name!r} (known: {', '.join(PROTOCOLS)})")
    rng = np.random.default_rng([2026, int(index), int(round(scale * 1000))])
    return PROTOCOLS[name][0](lr, rng)
