"""The training photos and the patches drawn from them (docs/LIIF.md section 3): photos
decoded once into memory (large ones halved first, which removes most JPEG blocking), a
sampler of random-scale LR patches with their sampled HR targets (vectorised numpy +
Pillow), and a stream of batches drawn in this process or in worker processes.

Workers are for a device whose step outruns one CPU core: the degraded sampler takes about
32 ms per batch of 16 on one core of a 2-core EPYC, a GPU step much less. Each worker has its
own sampler, seeded by the run's seed and the worker's index, and a DataLoader hands the
batches back in a fixed round-robin order, so the same seed and worker count draw the same
batches.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch.utils.data import DataLoader, IterableDataset, get_worker_info

from ..engine.formats import is_photo_name
from .degrade import degrade_for_training


def find_images(dirs: list[str]) -> list[Path]:
    files: list[Path] = []
    for d in dirs:
        p = Path(d)
        if p.is_file():
            files.append(p)
        else:
            files += sorted(f for f in p.rglob("*") if is_photo_name(f))
    return files


def load_training_images(dirs: list[str], halve_above: int = 400, min_side: int = 48) -> list[np.ndarray]:
    """uint8 HxWx3 arrays; images whose shorter side exceeds `halve_above` are halved,
    those smaller than one LR patch (`min_side`) or unreadable are skipped with a note."""
    out, skipped = [], []
    for f in find_images(dirs):
        try:
            with Image.open(f) as im:
                im = im.convert("RGB")
                if min(im.size) > halve_above:
                    im = im.resize((im.width // 2, im.height // 2), Image.BICUBIC)
                arr = np.asarray(im, dtype=np.uint8)
        except (OSError, ValueError, Image.DecompressionBombError):
            skipped.append(f"{f.name} (not a readable image)")
            continue
        if min(arr.shape[:2]) < min_side:
            skipped.append(f"{f.name} ({arr.shape[1]}x{arr.shape[0]}, smaller than a {min_side} px patch)")
            continue
        out.append(arr)
    if skipped:
        print(f"skipped {len(skipped)} image(s): {', '.join(skipped[:5])}"
              f"{' ...' if len(skipped) > 5 else ''}", file=sys.stderr)
    if not out:
        raise ValueError(f"no usable training images found in {', '.join(dirs)}")
    return out


class PatchSampler:
    """Draws training batches following the paper's recipe."""

    def __init__(self, images: list[np.ndarray], lr_size: int = 48, n_targets: int = 2304,
                 scale_max: float = 4.0, seed: int = 0, degrade: str | None = None) -> None:
        self.images = images
        self.degrade = degrade
        self.lr_size = lr_size
        self.n_targets = n_targets
        self.scale_max = scale_max
        self.rng = np.random.default_rng(seed)
        area = np.array([im.shape[0] * im.shape[1] for im in images], dtype=np.float64)
        self.p = np.sqrt(area) / np.sqrt(area).sum()

    def _crop(self, im: np.ndarray, size: int) -> np.ndarray:
        """Of two random crops, the more textured one (blurred backgrounds teach little)."""
        best, best_e = None, -1.0
        for _ in range(2):
            y = self.rng.integers(0, im.shape[0] - size + 1)
            x = self.rng.integers(0, im.shape[1] - size + 1)
            c = im[y:y + size, x:x + size]
            g = c[::4, ::4].astype(np.float32).mean(-1)
            e = float(np.abs(np.diff(g, axis=0)).mean() + np.abs(np.diff(g, axis=1)).mean())
            if e > best_e:
                best, best_e = c, e
        return best

    def sample(self, batch: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        lrs, coords, cells, gts = [], [], [], []
        n = self.lr_size
        for _ in range(batch):
            im = self.images[self.rng.choice(len(self.images), p=self.p)]
            s = self.rng.uniform(1.0, self.scale_max)
            size = min(round(n * s), min(im.shape[:2]))
            hr = self._crop(im, size)
            if self.degrade:
                lr = degrade_for_training(hr, n, self.rng, self.degrade)
            else:
                lr = np.asarray(Image.fromarray(hr).resize((n, n), Image.BICUBIC))
            if self.rng.random() < 0.5:
                hr, lr = hr[:, ::-1], lr[:, ::-1]
            if self.rng.random() < 0.5:
                hr, lr = hr[::-1], lr[::-1]
            if self.rng.random() < 0.5:
                hr, lr = hr.transpose(1, 0, 2), lr.transpose(1, 0, 2)
            idx = self.rng.choice(size * size, self.n_targets, replace=False)
            iy, ix = idx // size, idx % size
            coords.append(np.stack((-1 + (2 * iy + 1) / size, -1 + (2 * ix + 1) / size), -1))
            cells.append(np.full((self.n_targets, 2), 2.0 / size))
            gts.append(hr[iy, ix])
            lrs.append(np.ascontiguousarray(lr))
        lr_t = torch.from_numpy(np.stack(lrs)).permute(0, 3, 1, 2).float().div_(255)
        gt_t = torch.from_numpy(np.stack(gts)).float().div_(255)
        return ((lr_t - 0.5) / 0.5, torch.from_numpy(np.stack(coords)).float(),
                torch.from_numpy(np.stack(cells)).float(), (gt_t - 0.5) / 0.5)


class _WorkerBatches(IterableDataset):
    """Endless batches from a sampler of the worker's own (its seed: the run's and its index)."""

    def __init__(self, images: list[np.ndarray], batch: int, seed: int, sampler_args: dict) -> None:
        self.images, self.batch, self.seed, self.sampler_args = images, batch, seed, sampler_args

    def __iter__(self):
        info = get_worker_info()
        sampler = PatchSampler(self.images, seed=[self.seed, info.id if info else 0], **self.sampler_args)
        while True:
            yield sampler.sample(self.batch)


def batches(images: list[np.ndarray], batch: int, seed: int, workers: int = 0, pin: bool = False,
            **sampler_args):
    """An endless iterator of training batches (PatchSampler.sample's tuples) of `batch`
    patches: drawn here by one sampler seeded `seed` when `workers` is 0, else by `workers`
    processes; `pin`: in page-locked memory, for a copy to a GPU that overlaps the step."""
    if workers == 0:
        sampler = PatchSampler(images, seed=seed, **sampler_args)
        while True:
            yield sampler.sample(batch)
    loader = DataLoader(_WorkerBatches(images, batch, seed, sampler_args), batch_size=None,
                        num_workers=workers, pin_memory=pin, prefetch_factor=4)
    yield from loader
