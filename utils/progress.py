"""Progress of long loops on stderr: tqdm's bar on a terminal, whole lines elsewhere.

A tqdm bar redraws itself with carriage returns, which a log file or a pipe
(``bash scripts/demo.sh > demo.log 2>&1``, nohup, a scheduler's log) keeps as
one ever longer line. ``progress_bar`` takes tqdm's arguments and returns tqdm's
bar when its stream is a terminal, else a ``LineProgress``: the same counter
that prints a plain line when another tenth of the total is done (at most one
every ``LINE_GAP_S`` seconds; without a total, one every ``UNKNOWN_TOTAL_GAP_S``
seconds) and a last line, with the count, time and rate, when it closes.
"""
from __future__ import annotations

import sys

from tqdm import tqdm

LINE_GAP_S = 10.0            # a quick loop prints only its last line
UNKNOWN_TOTAL_GAP_S = 60.0


class LineProgress(tqdm):
    """tqdm that writes whole lines (no carriage return) at tenths of the total and when it closes."""

    def __init__(self, *args, **kwargs):
        self._last_line = None  # (tenth, time, count) of the last line printed; display() runs inside __init__
        super().__init__(*args, **kwargs)

    def _tenth(self) -> int:
        return int(10 * self.n / self.total) if self.total else 0

    def _due(self) -> bool:
        tenth, at, _ = self._last_line or (0, self.start_t, 0)
        elapsed = self._time() - at
        if not self.total:
            return elapsed >= UNKNOWN_TOTAL_GAP_S
        return self._tenth() > tenth and elapsed >= LINE_GAP_S

    def _print_line(self) -> None:
        self.fp.write(f"{self}\n")
        self.fp.flush()
        self._last_line = (self._tenth(), self._time(), self.n)

    def display(self, msg=None, pos=None):
        if msg is None and hasattr(self, "start_t") and self._due():
            self._print_line()
        return False  # nothing to clear when the bar closes

    def close(self):
        if not self.disable and hasattr(self, "start_t"):
            if self._last_line is None or self._last_line[2] != self.n:
                self._print_line()
            self.leave = False  # tqdm's close adds nothing after the last line
        super().close()


def progress_bar(iterable=None, **kwargs) -> tqdm:
    """``tqdm(iterable, **kwargs)`` on a terminal, ``LineProgress`` when the stream (``file``,
    default stderr) is a file or a pipe."""
    stream = kwargs.get("file") or sys.stderr
    interactive = getattr(stream, "isatty", lambda: False)()
    return (tqdm if interactive else LineProgress)(iterable, **kwargs)
