"""Opening photos off the GUI thread: `PhotoLoader` (a QThread, newest request wins)
decodes a file and makes it ready for the screen (`for_screen`: ICC conversion and the
screen pyramid); `open_failure` words what went wrong as one sentence. No torch."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QThread, Signal

from ..engine import images
from .frame import source_pyramid


@dataclass
class ScreenPhoto:
    """A photo made ready for the screen: its sRGB pyramid for the canvases and the
    function that converts rendered pixels to sRGB (None when they are sRGB already)."""
    photo: images.Photo
    pyramid: list
    display: object = None


def for_screen(photo) -> ScreenPhoto:
    """Colour-convert (ICC) and build the screen pyramid: seconds for a big photo, so the
    loader thread does it; the GUI thread only swaps the result in."""
    display_rgb, display = photo.pixels, None
    if getattr(photo.metadata, "icc_profile", None):
        display_rgb = images.to_srgb(photo)
        meta, where = photo.metadata, photo.path

        def to_screen(rgb):  # rendered pixels are in the photo's colour space too
            return images.to_srgb(images.Photo(rgb, meta, where))
        display = to_screen
    return ScreenPhoto(photo, source_pyramid(display_rgb), display)


def open_failure(path: Path, error: Exception) -> str:
    """One sentence for a person about a photo that could not be opened."""
    if isinstance(error, ValueError):       # images.ImageError says it already
        return str(error)
    if isinstance(error, MemoryError):
        return f"{path.name} is too large to open with the memory available."
    if isinstance(error, OSError):
        return f"{path.name} could not be read ({error.strerror or error})."
    return f"{path.name} could not be opened ({type(error).__name__}: {error})."


class PhotoLoader(QThread):
    """Decodes photos off the GUI thread, so that opening a 100 MP photo never freezes the
    window. One at a time, newest request wins: a request made while another is being
    decoded waits for it (a decode cannot be interrupted, and two at once would need twice
    the memory), and a result that is no longer wanted is dropped without being sent.
    `preload(path)` decodes a photo likely to be opened next (the next in the folder) when
    there is nothing else to do, and keeps that one ready, so opening it is instant."""

    loaded = Signal(int, object)     # ticket, ScreenPhoto
    failed = Signal(int, str)        # ticket, one sentence

    def __init__(self, parent=None, load=images.load) -> None:
        """`load(path) -> images.Photo` decodes a file (images.load; a test may hand in
        one that takes its time)."""
        super().__init__(parent)
        self._load = load
        self._cond = threading.Condition()
        self._pending: tuple[int, Path] | None = None
        self._preload: Path | None = None
        self._kept: tuple[Path, float, ScreenPhoto] | None = None   # a preloaded photo: path, mtime
        self._stopping = False

    def open(self, ticket: int, path: Path) -> None:
        with self._cond:
            self._pending = (ticket, Path(path))
            self._cond.notify()

    def preload(self, path: Path | None) -> None:
        """Decode `path` ahead, in idle time, keeping it for an open of the same file
        (None: keep nothing)."""
        with self._cond:
            self._preload = Path(path) if path is not None else None
            if self._kept is not None and self._kept[0] != self._preload:
                self._kept = None
            self._cond.notify()

    @property
    def preloaded(self) -> Path | None:
        """The photo kept ready by preload, if any."""
        with self._cond:
            return self._kept[0] if self._kept is not None else None

    def stop(self) -> None:
        """End the thread (waits for a decode in progress)."""
        with self._cond:
            self._stopping = True
            self._cond.notify()
        self.wait()

    def _superseded(self) -> bool:
        with self._cond:
            return self._stopping or self._pending is not None

    def run(self) -> None:
        while True:
            with self._cond:
                while not (self._stopping or self._pending or self._preload):
                    self._cond.wait()
                if self._stopping:
                    return
                opening, self._pending = self._pending, None
                ahead = None
                if opening is None:
                    ahead, self._preload = self._preload, None
            if opening is not None:
                self._open(*opening)
            else:
                self._read_ahead(ahead)

    def _take_kept(self, path: Path) -> ScreenPhoto | None:
        """The preloaded photo if it is `path` and the file has not changed since."""
        with self._cond:
            kept, self._kept = self._kept, None
        if kept is None or kept[0] != path:
            return None
        try:
            return kept[2] if path.stat().st_mtime == kept[1] else None
        except OSError:
            return None

    def _read_ahead(self, path: Path) -> None:
        try:
            mtime = path.stat().st_mtime
            ready = for_screen(self._load(path))
        except Exception:   # it will be reported if and when the person opens it
            return
        with self._cond:
            if self._preload in (None, path):   # nobody asked for another one meanwhile
                self._kept = (path, mtime, ready)

    def _open(self, ticket: int, path: Path) -> None:
        # A method of its own so that nothing here outlives it: a photo the GUI did not
        # take is freed at once, not kept until the next open.
        kept = self._take_kept(path)
        if kept is not None:
            self.loaded.emit(ticket, kept)
            return
        try:
            photo = self._load(path)
            if self._superseded():
                return
            ready = for_screen(photo)
        except Exception as e:   # this thread must outlive any bad file
            if not self._superseded():
                self.failed.emit(ticket, open_failure(path, e))
            return
        if not self._superseded():
            self.loaded.emit(ticket, ready)
