"""Progress bars for long work (imports, training, bulk classification), on stderr."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["progress_bar"]


class _Silent:
    def update(self, n: int = 1) -> None:
        pass

    def set_postfix_str(self, s: str) -> None:
        pass


@contextmanager
def progress_bar(*, total: int, desc: str, unit: str = "it", enable: bool = True) -> Iterator:
    if not enable:
        yield _Silent()
        return
    from tqdm import tqdm

    # In a log file (no terminal) every redraw would be a new chunk of text: redraw rarely there.
    interactive = sys.stderr.isatty()
    with tqdm(
        total=total,
        desc=desc,
        unit=unit,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.1 if interactive else 5.0,
    ) as bar:
        yield bar
