"""zoomviewer: a photo viewer in which magnification never shows pixels.

Layers, each importing only those before it: geometry, images -> model -> render ->
export -> (the Qt line) -> worker -> canvas -> window.
"""

__version__ = "0.1.0"
