"""zoomviewer: a photo viewer in which magnification never shows pixels.

Three rooms under the command line (cli.py, with batch.py and progress.py for upscale),
imports running one way, engine <- app <- lab <- cli: engine/ (pure compute, no Qt), app/
(everything Qt; its widgets never load torch), lab/ (training, evaluation, the bench).
docs/ARCHITECTURE.md has the map.
"""

__version__ = "0.1.0"
