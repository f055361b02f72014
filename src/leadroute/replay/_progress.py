"""A progress line on stderr: redrawn in place on a terminal, a periodic plain line otherwise.

Plain rendering is enough here (one bar, one number): a progress library would be a dependency
for twenty lines of code.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TextIO

__all__ = ["ProgressBar"]

BAR_WIDTH = 30


class ProgressBar:
    """Call with ``(done, total)``; :meth:`close` ends the line.

    On a terminal the bar is redrawn at most ``redraw_every`` seconds apart; elsewhere (CI logs,
    a file) one line is written at most every ``line_every`` seconds, plus the last one.
    """

    def __init__(
        self,
        stream: TextIO,
        *,
        label: str = "replaying",
        redraw_every: float = 0.1,
        line_every: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream
        self.label = label
        self.tty = stream.isatty()
        self.every = redraw_every if self.tty else line_every
        self.clock = clock
        self.started = clock()
        self.last_shown: float | None = None
        self.last: tuple[int, int] = (0, 0)

    def __call__(self, done: int, total: int) -> None:
        self.last = (done, total)
        now = self.clock()
        if self.last_shown is not None and now - self.last_shown < self.every and done < total:
            return
        self.last_shown = now
        self._show(done, total, now)

    def _show(self, done: int, total: int, now: float) -> None:
        elapsed = now - self.started
        share = done / total if total else 1.0
        eta = f", about {elapsed / share - elapsed:.0f}s left" if 0 < share < 1 and elapsed >= 1 else ""
        text = f"{self.label} {done:,}/{total:,} leads ({share:.0%}) in {elapsed:.0f}s{eta}"
        if self.tty:
            filled = round(BAR_WIDTH * share)
            bar = "#" * filled + "." * (BAR_WIDTH - filled)
            self.stream.write(f"\r\x1b[2K[{bar}] {text}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        """Show the final count and end the line."""
        done, total = self.last
        if self.last_shown is None or self.tty:
            self._show(done, total, self.clock())
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()
