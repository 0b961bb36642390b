"""Progress of `zoomviewer upscale` on stderr, and the lines it prints between photos.

Three ways, chosen once per run from where stderr goes: on a terminal, tqdm bars (the
photo's and, for a batch, the whole run's, each with elapsed and remaining time); to a
file or a pipe, plain newline-terminated lines, at most one every LINE_EVERY_S seconds (a
log should fill neither with carriage returns nor with a line per tile); with --quiet,
nothing but errors. Notes and errors go through the same object, so that a line never
lands in the middle of a bar.
"""

from __future__ import annotations

import os
import sys
import time

LINE_EVERY_S = 5.0
BAR_FORMAT = "{desc} {percentage:3.0f}% |{bar}| {elapsed}<{remaining}"


def _terminal(stream) -> bool:
    """Whether `stream` is a terminal that bars can be drawn on: tqdm draws nothing on
    one that reports no size (some pseudo-terminals), so that one gets plain lines."""
    try:
        if not stream.isatty():
            return False
    except (AttributeError, ValueError):   # no isatty, or a closed stream
        return False
    try:
        size = os.get_terminal_size(stream.fileno())
    except (AttributeError, OSError, ValueError):  # a terminal without a file descriptor
        return True
    return size.columns > 0 and size.lines > 0


def duration(seconds: float) -> str:
    """'8 s', '4 min', '1 h 05 min': a remaining time as people say it."""
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds} s"
    minutes = round(seconds / 60)
    return f"{minutes} min" if minutes < 60 else f"{minutes // 60} h {minutes % 60:02d} min"


class Progress:
    """Progress over `count` photos, as a context manager (the bars are closed however the
    run ends). start(label) begins the next photo, show(fraction) says how far it is,
    end() closes it and leave() takes a photo that will not be made (skipped, failed) out
    of the run's total; note() and error() print a line of their own. `batch` adds the
    whole run's progress; `clock` is time.monotonic (tests pass their own)."""

    def __init__(self, count: int, *, stream=None, quiet: bool = False, batch: bool = False,
                 clock=time.monotonic) -> None:
        self.stream = sys.stderr if stream is None else stream
        self.total, self.batch, self.clock = count, batch, clock
        self.mode = "quiet" if quiet else "bars" if _terminal(self.stream) else "lines"
        self.label, self.fraction, self.finished = "", 0.0, 0
        self.began = clock()
        self.line_at: float | None = None      # when the last plain line was printed
        self.line_shown: tuple[str, int] | None = None
        self.bar = self.overall = None

    def __enter__(self) -> Progress:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self, label: str) -> None:
        self.label, self.fraction = label, 0.0
        if self.mode == "bars":
            from tqdm import tqdm

            if self.batch and self.overall is None:
                self.overall = tqdm(total=self.total, desc="all photos", position=0, file=self.stream,
                                    bar_format=BAR_FORMAT, dynamic_ncols=True)
            self.bar = tqdm(total=100, desc=label, position=1 if self.batch else 0, leave=not self.batch,
                            file=self.stream, bar_format=BAR_FORMAT, dynamic_ncols=True)
        self.show(0.0)

    def show(self, fraction: float) -> None:
        """The current photo is this far done (0 to 1)."""
        self.fraction = min(max(float(fraction), 0.0), 1.0)
        if self.mode == "bars":
            self.bar.update(100 * self.fraction - self.bar.n)
            self._update_overall()
        elif self.mode == "lines":
            now = self.clock()
            if self.line_at is None or now - self.line_at >= LINE_EVERY_S:
                self._line(now)

    def run_fraction(self) -> float:
        """How much of the run is done, the current photo's part included."""
        return min(1.0, (self.finished + self.fraction) / self.total) if self.total > 0 else 1.0

    def end(self) -> None:
        """The current photo is written."""
        self.finished += 1
        if self.mode == "lines" and not self.batch and self.line_shown != (self.label, 100):
            self._line(self.clock())   # a single photo's log ends at 100 %, however fast it went
        self.fraction = 0.0
        self._close_bar()
        self._update_overall()

    def leave(self) -> None:
        """A photo of the run will not be made: the run's total shrinks, so that its
        remaining time counts only photos still to render."""
        self.total = max(0, self.total - 1)
        self.fraction = 0.0
        self._close_bar()
        if self.overall is not None:
            self.overall.total = self.total
        self._update_overall()

    def note(self, message: str) -> None:
        """A line for people watching (a skip, the summary); none with --quiet."""
        if self.mode != "quiet":
            self._print(message)

    def error(self, message: str) -> None:
        """A photo that failed, in one line: shown even with --quiet."""
        self._print(message)

    def close(self) -> None:
        self._close_bar()
        if self.overall is not None:
            self.overall.close()
            self.overall = None

    def _print(self, message: str) -> None:
        if self.bar is not None or self.overall is not None:
            from tqdm import tqdm

            tqdm.write(message, file=self.stream)   # clears the bars, prints, redraws them
        else:
            print(message, file=self.stream, flush=True)

    def _line(self, now: float) -> None:
        percent = int(100 * self.fraction)
        text = f"{self.label}: {percent} %"
        done = self.run_fraction()
        if self.batch and done > 0:
            left = (now - self.began) * (1 - done) / done
            text += f" (all photos: {int(100 * done)} %, about {duration(left)} left)"
        print(text, file=self.stream, flush=True)
        self.line_at, self.line_shown = now, (self.label, percent)

    def _update_overall(self) -> None:
        if self.overall is not None:
            self.overall.update(self.finished + self.fraction - self.overall.n)

    def _close_bar(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None
