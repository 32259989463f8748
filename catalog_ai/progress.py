"""Progress bars for long work (imports, training, bulk classification): tqdm on stderr."""

from __future__ import annotations

import sys

from tqdm import tqdm

__all__ = ["progress_bar"]


def progress_bar(*, total: int, desc: str, unit: str = "it", enable: bool = True) -> tqdm:
    """A tqdm bar (use it as a context manager), silent when not ``enable``. In a log file (no
    terminal) every redraw would be a new chunk of text, so it redraws rarely there."""
    return tqdm(
        total=total,
        desc=desc,
        unit=unit,
        disable=not enable,
        file=sys.stderr,
        dynamic_ncols=True,
        mininterval=0.1 if sys.stderr.isatty() else 5.0,
    )
