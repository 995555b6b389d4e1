"""Progress on every long step: a tqdm bar on a terminal; in a log (a file, CI, `nohup`), a whole line
every few seconds and one at the end, never a carriage-return bar that a log cannot show.

    for batch in bar(batches, desc="encoding", unit="batch", enabled=progress): ...
"""

from __future__ import annotations

import io
import sys
import time

from tqdm.auto import tqdm

LOG_EVERY = 5.0  # seconds between lines in a log


class LogLines(tqdm):
    """tqdm for logs: the usual status text ("encoding: 40%| 320/800 [00:12<00:18, 26.4 text/s]") as a
    line of its own every `LOG_EVERY` seconds, and once when the work is done; a step shorter than
    `LOG_EVERY` writes that last line only."""

    def __init__(self, *args, **kwargs):
        self._last = time.monotonic()  # before tqdm's __init__, which may display already
        self._shown = None  # the count the last line showed: the end is written once
        kwargs.setdefault("mininterval", 0)  # tqdm keeps its count current; `display` chooses when to write
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        now = time.monotonic()
        if (now - self._last >= LOG_EVERY or (self.total and self.n >= self.total)) and self._shown != self.n:
            self._line(now)
        return True

    def _line(self, now: float) -> None:
        self._last, self._shown = now, self.n
        self.fp.write(self.__str__().replace("\r", "") + "\n")
        self.fp.flush()

    def close(self):
        if not self.disable and self._shown != self.n:
            self._line(time.monotonic())  # the end, also of work whose total was not known
        # tqdm's close draws the bar once more and ends it with a newline: here the log has its last line.
        fp, self.fp = self.fp, io.StringIO()
        try:
            super().close()
        finally:
            self.fp = fp


def bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A progress bar over `iterable` (or `total=` and `.update(n)`): tqdm on a terminal, `LogLines`
    elsewhere, nothing when not `enabled`. Keyword arguments are tqdm's."""
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return LogLines(iterable, **kwargs)
