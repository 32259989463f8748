"""Weight averaging during fine-tuning: an exponential moving average (EMA) or a uniform (SWA-style)
average of the network's weights, kept next to the weights being trained.

The averaging itself is PyTorch's :class:`torch.optim.swa_utils.AveragedModel` (parameters and
BatchNorm buffers); this callback only decides which averages to keep, from which step, and which
one the bundle is written with. Several averages can be kept in one run (``record``) together with
the raw final weights, so one training run gives a paired comparison from the same seed
(``benchmarks/recipe_options.py``).

A spec is ``"ema"`` / ``"ema<decay>"`` (EMA updated every optimizer step, e.g. ``ema0.99``) or
``"swa"`` / ``"swa<start>"`` (the plain mean of the weights after every step from the ``start``
share of the run on, e.g. ``swa0.5``: the second half). The learning-rate schedule stays the
recipe's one-cycle schedule: this is averaging along the annealed run, not SWA's cyclic schedule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import lightning as L
import torch
from torch.optim.swa_utils import AveragedModel, get_ema_multi_avg_fn

from catalog_ai.training.data import TrainingDataError

__all__ = ["AverageSpec", "WeightAverages", "parse_average"]

DEFAULT_EMA_DECAY = 0.998
DEFAULT_SWA_START = 0.5
_SPEC = re.compile(r"^(ema|swa)(\d*\.?\d+)?$")


@dataclass(frozen=True)
class AverageSpec:
    name: str  # canonical, e.g. "ema0.998", "swa0.5"
    kind: str  # "ema" or "swa"
    value: float  # EMA decay, or the share of the run after which SWA averaging starts


def parse_average(text: str) -> AverageSpec:
    """``"ema"``, ``"ema0.99"``, ``"swa"``, ``"swa0.75"`` → a spec; anything else is refused."""
    match = _SPEC.match(text.strip().lower())
    if match is None:
        raise TrainingDataError(
            f"weight averaging {text!r} must be 'none', 'ema', 'ema<decay>' (e.g. ema0.998), "
            "'swa' or 'swa<start share>' (e.g. swa0.5)"
        )
    kind, number = match.group(1), match.group(2)
    default = DEFAULT_EMA_DECAY if kind == "ema" else DEFAULT_SWA_START
    value = float(number) if number else default
    if not 0.0 <= value < 1.0:
        raise TrainingDataError(f"weight averaging {text!r}: the number must be in [0, 1)")
    return AverageSpec(f"{kind}{value:g}", kind, value)


class WeightAverages(L.Callback):
    """Keeps the averages ``specs`` of ``pl_module.network`` during training. At the end,
    :attr:`states` holds each average's state dict and the raw final weights (``"raw"``), all on
    the CPU, and the network holds the weights of ``use`` (a spec name, or None: the raw ones)."""

    def __init__(self, specs: Sequence[str], *, use: str | None = None):
        self.specs = {s.name: s for s in (parse_average(t) for t in specs)}
        self.use = parse_average(use).name if use else None
        if self.use is not None and self.use not in self.specs:
            self.specs[self.use] = parse_average(use or "")
        self._models: dict[str, AveragedModel] = {}
        self._start: dict[str, int] = {}
        self._last_step = 0
        self.states: dict[str, dict[str, torch.Tensor]] = {}

    @staticmethod
    def _network(pl_module: L.LightningModule) -> torch.nn.Module:
        return cast(torch.nn.Module, pl_module.network)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        # Here, not in setup(): the module is on its training device by now, so the averages
        # live there too and an update is a few fused kernels, not a copy to the CPU.
        network = self._network(pl_module)
        total = max(1, int(trainer.estimated_stepping_batches))
        for name, spec in self.specs.items():
            multi_avg_fn = get_ema_multi_avg_fn(spec.value) if spec.kind == "ema" else None
            self._models[name] = AveragedModel(network, multi_avg_fn=multi_avg_fn, use_buffers=True)
            self._start[name] = int(spec.value * total) if spec.kind == "swa" else 0

    def on_train_batch_end(self, trainer: L.Trainer, pl_module: L.LightningModule, *args) -> None:
        step = trainer.global_step  # optimizer steps taken so far (gradient accumulation aware)
        if step <= self._last_step:
            return
        self._last_step = step
        network = self._network(pl_module)
        for name, model in self._models.items():
            if step > self._start[name]:
                model.update_parameters(network)

    def on_train_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        network = self._network(pl_module)
        self.states = {"raw": _cpu(network.state_dict())}
        for name, model in self._models.items():
            if int(model.n_averaged) == 0:  # a run too short to reach the averaging window
                model.update_parameters(network)
            self.states[name] = _cpu(model.module.state_dict())
        if self.use is not None:
            network.load_state_dict(self.states[self.use])


def _cpu(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu", copy=True) for k, v in state.items()}
