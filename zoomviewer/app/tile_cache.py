"""The render thread's cache of finished screen tiles: an LRU bounded in bytes.

A key says what rendered a tile ((effect, zoom, sample step, tile key)); the entry keeps
the device-pixel rect it covers and its image. A tile cached for a smaller visible part
of the tile (at the view's edge) does not serve a request for more of it. Panning back,
toggling A/B or returning to a zoom is served from here without decoding. No Qt and no
torch: the sizes come from `size_of` (QImage.sizeInBytes in the viewer).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable

Rect = tuple[int, int, int, int]


class TileCache:
    def __init__(self, max_bytes: int, size_of: Callable[[object], int]) -> None:
        self.max_bytes = int(max_bytes)
        self._size_of = size_of
        self._entries: OrderedDict[Hashable, tuple[Rect, object]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def bytes(self) -> int:
        """The images' total size, as size_of counts it."""
        return self._bytes

    def get(self, key: Hashable, rect: Rect) -> tuple[Rect, object] | None:
        """(cached rect, image) when the entry for `key` covers `rect`; else None."""
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                return None
            have = entry[0]
            if not (have[0] <= rect[0] and have[1] <= rect[1] and have[2] >= rect[2] and have[3] >= rect[3]):
                return None
            self._entries.move_to_end(key)
            return entry

    def put(self, key: Hashable, rect: Rect, image: object) -> None:
        """Keep `image` for `key`, dropping the least recently used beyond max_bytes (the
        newest entry always stays, however large)."""
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self._bytes -= self._size_of(old[1])
            self._entries[key] = (rect, image)
            self._bytes += self._size_of(image)
            while self._bytes > self.max_bytes and len(self._entries) > 1:
                _, (_, dropped) = self._entries.popitem(last=False)
                self._bytes -= self._size_of(dropped)

    def images(self) -> list:
        """What the cache holds, least recently used first."""
        with self._lock:
            return [image for _, image in self._entries.values()]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._bytes = 0
