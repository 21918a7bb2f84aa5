"""The one progress-bar helper of the package (the photutils ``add_progress_bar`` pattern).

On a terminal a long step shows one tqdm bar; when the output is not a
terminal (a log file, a batch job) the same step writes a few plain lines
instead: one every `LINE_INTERVAL` seconds at most, and one when it ends.
"""

import sys
import time

__all__ = ["add_progress_bar", "progress_bar"]

#: Seconds between two plain progress lines when the output is not a terminal.
LINE_INTERVAL = 10.0


class _NoBar:
    """What a disabled bar is: it counts, and prints nothing."""

    def __init__(self, total=None):
        self.total = total
        self.n = 0

    def update(self, n=1):
        self.n += n

    def set_postfix(self, **values):
        pass

    def close(self):
        pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()


class _LineBar(_NoBar):
    """Plain lines (``desc: n/total unit, elapsed``) for output that is not a terminal."""

    def __init__(self, total, desc, unit, stream):
        super().__init__(total)
        self.desc, self.unit, self.stream = desc, unit, stream
        self.start = self.last = time.monotonic()
        self.postfix = ""
        self.closed = False

    def _line(self, now):
        total = "" if self.total is None else f"/{self.total}"
        self.stream.write(
            f"{self.desc}: {self.n}{total} {self.unit} ({now - self.start:.1f} s){self.postfix}\n"
        )
        self.stream.flush()
        self.last = now

    def update(self, n=1):
        super().update(n)
        now = time.monotonic()
        if now - self.last >= LINE_INTERVAL:
            self._line(now)

    def set_postfix(self, **values):
        self.postfix = "".join(f", {k}={v}" for k, v in values.items())

    def close(self):
        if not self.closed:
            self.closed = True
            self._line(time.monotonic())


def progress_bar(*, total=None, desc="", unit="it", enabled=True, initial=0, file=None):
    """A progress bar for one long step (a context manager with ``update``).

    Parameters
    ----------
    total : int, optional
        Number of items of the step.
    desc : str, optional
        What the step is (``"classify"``, ``"train"``).
    unit : str, optional
        Unit of the items.
    enabled : bool, optional
        False gives a bar that prints nothing.
    initial : int, optional
        Items already done (a resumed step).
    file : file object, optional
        Where the bar goes; default `sys.stderr`. A tqdm bar on a
        terminal, plain lines otherwise.
    """
    stream = sys.stderr if file is None else file
    if not enabled:
        bar = _NoBar(total)
    elif getattr(stream, "isatty", lambda: False)():
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, file=stream)
    else:
        bar = _LineBar(total, desc, unit, stream)
    bar.n = initial
    return bar


def add_progress_bar(iterable, *, desc="", unit="it", total=None, enabled=True, file=None):
    """Iterate over ``iterable`` with a progress bar (see `progress_bar`).

    Returns a generator of the items of ``iterable``; the bar ends when the
    iteration does.
    """
    if total is None and hasattr(iterable, "__len__"):
        total = len(iterable)
    with progress_bar(total=total, desc=desc, unit=unit, enabled=enabled, file=file) as bar:
        for item in iterable:
            yield item
            bar.update(1)
