"""An ExportJob carried out on the render thread (so it never races the viewer for the
photo's Latent), reported as one `ExportOutcome` sentence for a person. No Qt."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..engine.export import export_view
from ..engine.render import Cancelled, Latent
from .protocol import ExportJob

FINISHED, FAILED, CANCELLED = "finished", "failed", "cancelled"


@dataclass(frozen=True)
class ExportOutcome:
    how: str          # FINISHED, FAILED or CANCELLED
    detail: str = ""  # the path written, or why it failed


def run_export(job: ExportJob, latent: Callable[[], Latent] | None, cancel: Callable[[], bool],
               progress: Callable[[float], None], cell_clip: bool = False) -> ExportOutcome:
    """Export `job` with the photo's Latent (`latent()`; None when no model is loaded)."""
    if latent is None:
        return ExportOutcome(FAILED, "no trained model is loaded, so there is nothing to export the photo with")
    try:
        for fraction in export_view(latent(), job.photo, job.region, job.out_size, job.path, format=job.format,
                                    bits=job.bits, quality=job.quality, cancel=cancel, cell_clip=cell_clip,
                                    views=job.views):
            progress(float(fraction))
    except Cancelled:
        return ExportOutcome(CANCELLED)
    except ValueError as e:   # ExportError and friends: a sentence for a person
        return ExportOutcome(FAILED, str(e))
    except Exception as e:    # the thread must outlive any failure; the person still gets a sentence
        return ExportOutcome(FAILED, f"the export failed: {e}")
    return ExportOutcome(FINISHED, str(job.path))
