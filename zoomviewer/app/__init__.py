"""Everything Qt: the render thread and its parts, the Viewport, the canvases, the compare
layouts, the dialogs, the window and the entry points (launch.py)."""
