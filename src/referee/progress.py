"""Progress on every long step: a tqdm bar on a terminal; in a log (a file, CI, `nohup`), a whole line
every few seconds and one at the end, never a carriage-return bar that a log cannot show.

    for batch in bar(batches, desc="encoding", unit="batch", enabled=progress): ...
"""

from __future__ import annotations

import math
import sys
import time

from tqdm.auto import tqdm

LOG_EVERY = 5.0  # seconds between lines in a log


class LogLines(tqdm):
    """tqdm for logs: the usual status text ("encoding: 40%| 320/800 [00:12<00:18, 26.4 text/s]") as a
    line of its own every `LOG_EVERY` seconds, and when the work is done."""

    def __init__(self, *args, **kwargs):
        self._last = -math.inf  # before tqdm's __init__, which may display already
        kwargs.setdefault("mininterval", LOG_EVERY)
        super().__init__(*args, **kwargs)

    def display(self, msg=None, pos=None):
        now = time.monotonic()
        if now - self._last >= LOG_EVERY or (self.total and self.n >= self.total):
            self._last = now
            self.fp.write(self.__str__().replace("\r", "") + "\n")
            self.fp.flush()
        return True


def bar(iterable=None, *, enabled: bool = True, **kwargs) -> tqdm:
    """A progress bar over `iterable` (or `total=` and `.update(n)`): tqdm on a terminal, `LogLines`
    elsewhere, nothing when not `enabled`. Keyword arguments are tqdm's."""
    if not enabled:
        return tqdm(iterable, disable=True, **kwargs)
    if sys.stderr.isatty():
        return tqdm(iterable, **kwargs)
    return LogLines(iterable, **kwargs)
