"""One decision from two sources: the trained head and the prototype memory.

The head scores its categories with logits (divided by the calibrated temperature). A category
served by prototypes only gets the logit ``scale * cosine + bias``. One softmax over both makes
a single distribution over every category, so few-shot categories compete with head categories
on the evidence, and the tree-consistent sums, the back-off and the thresholds work unchanged.

``scale`` and ``bias`` are fitted by simulation on held-out photos of head categories: each
photo is scored once with its own category *turned into a prototype-only one* (its head column
removed, a prototype from ``k`` random training photos in its place: the fused model should pick
the prototype) and once with a random *other* category turned into one (it should keep picking the
head's answer). Maximising the likelihood of both finds the balance between recognising new
categories and not letting them steal photos of known ones.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch is imported where it computes: the prototype memory needs only the params
    import torch

__all__ = ["FusionParams", "fit_fusion", "fuse", "open_set_threshold"]


@dataclass
class FusionParams:
    """How prototype similarities become scores comparable with the head's logits.

    ``scale``/``bias``: logit of a prototype-only category = ``scale * cosine + bias``, on the
    same footing as the head's (temperature-scaled) logits in one softmax. ``open_set_cosine``:
    a photo whose best cosine to every known category is below this is "possibly a new
    category". All three are fitted on held-out photos (see ``fit_fusion``).

    ``nearest_gate``: a prototype-only category may take a photo only when its prototype is
    nearer to the photo than the prototype of every trained category. Without it, the fitted
    ``scale``/``bias`` let 16 new categories added with 5 photos each cut the accuracy on the
    Grocery val photos of the 65 known ones by 36–39 points (benchmarks/fewshot.py); with it, by
    5–8 (Lite0 / Lite2 base models). It costs recall on the new categories (80 % → 56–61 % at 5
    photos): known categories come first. Other rules measured (benchmarks/fewshot_variants.py)
    traded no better.
    """

    scale: float = 20.0
    bias: float = -8.0
    open_set_cosine: float = -1.0  # never, until fitted
    fitted_on: str = ""
    nearest_gate: bool = True

    def to_dict(self) -> dict:
        return {
            "scale": self.scale,
            "bias": self.bias,
            "open_set_cosine": self.open_set_cosine,
            "fitted_on": self.fitted_on,
            "nearest_gate": self.nearest_gate,
        }

    @classmethod
    def from_dict(cls, data: dict) -> FusionParams:
        return cls(
            float(data.get("scale", 20.0)),
            float(data.get("bias", -8.0)),
            float(data.get("open_set_cosine", -1.0)),
            str(data.get("fitted_on", "")),
            bool(data.get("nearest_gate", True)),
        )


def fuse(
    head_logits: torch.Tensor,
    proto_cosines: torch.Tensor,
    params: FusionParams,
    trained_best: torch.Tensor | None = None,
) -> torch.Tensor:
    """``(B, H)`` temperature-scaled head logits + ``(B, P)`` cosines of prototype-only categories
    → ``(B, H + P)`` probabilities (head categories first).

    ``trained_best``: ``(B,)`` each photo's best cosine to the prototypes of the trained
    categories; with ``params.nearest_gate``, a prototype-only category that is not nearer than
    that gets no probability (see :class:`FusionParams`)."""
    import torch

    if proto_cosines.shape[1] == 0:
        return head_logits.softmax(dim=1)
    cosines = proto_cosines.to(head_logits.dtype)
    proto_logits = params.scale * cosines + params.bias
    if params.nearest_gate and trained_best is not None:
        closer = cosines > trained_best.to(head_logits.dtype)[:, None]
        proto_logits = proto_logits.masked_fill(~closer, float("-inf"))
    return torch.cat([head_logits, proto_logits], dim=1).softmax(dim=1)


def fit_fusion(
    head_logits: torch.Tensor,
    query_vectors: np.ndarray,
    labels: np.ndarray,
    train_vectors: dict[int, np.ndarray],
    *,
    shots: tuple[int, ...] = (1, 3, 5),
    seed: int = 0,
    source: str = "",
) -> FusionParams:
    """Fit ``scale``/``bias`` by simulation (module docstring).

    ``head_logits``: ``(N, H)`` temperature-scaled logits of held-out photos; ``query_vectors``:
    their normalised embeddings ``(N, D)``; ``labels``: their head column; ``train_vectors``: per
    head column, the normalised embeddings of its training photos (prototypes are built from these).
    """
    import torch

    rng = np.random.default_rng(seed)
    n, h = head_logits.shape
    usable = np.array([len(train_vectors.get(int(c), ())) > 0 for c in labels])
    if n < 2 or h < 2 or not usable.any():
        return FusionParams(fitted_on=f"{source} (too little data: defaults)")
    idx = np.flatnonzero(usable)
    logits = head_logits[idx].double()
    q = torch.from_numpy(np.asarray(query_vectors, dtype=np.float64)[idx])
    own = labels[idx].astype(np.int64)
    others = np.array(
        [rng.choice([c for c in train_vectors if c != o and len(train_vectors[c])]) for o in own]
    )

    def prototype(c: int) -> np.ndarray:
        pool = train_vectors[int(c)]
        k = min(int(rng.choice(shots)), len(pool))
        v: np.ndarray = pool[rng.choice(len(pool), size=k, replace=False)].mean(0)
        return v / max(float(np.linalg.norm(v)), 1e-12)

    cos_own = (q * torch.from_numpy(np.stack([prototype(c) for c in own]))).sum(1)
    cos_other = (q * torch.from_numpy(np.stack([prototype(c) for c in others]))).sum(1)
    rows = torch.arange(len(idx))
    own_t, other_t = torch.from_numpy(own), torch.from_numpy(others)
    # A: own category is prototype-only → its head column is removed (masked out).
    masked_own = logits.clone()
    masked_own[rows, own_t] = float("-inf")
    # B: another category is prototype-only → the photo should stay with its head category.
    masked_other = logits.clone()
    masked_other[rows, other_t] = float("-inf")

    scale = torch.tensor(20.0, dtype=torch.float64, requires_grad=True)
    bias = torch.tensor(-8.0, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([scale, bias], lr=0.5, max_iter=200, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        za = scale * cos_own + bias
        zb = scale * cos_other + bias
        nll_a = torch.logsumexp(torch.cat([masked_own, za[:, None]], 1), 1) - za
        all_b = torch.cat([masked_other, zb[:, None]], 1)
        nll_b = torch.logsumexp(all_b, 1) - logits[rows, own_t]
        loss = nll_a.mean() + nll_b.mean()
        loss.backward()
        return loss

    opt.step(closure)
    s, b = float(scale.detach()), float(bias.detach())
    if not (np.isfinite(s) and np.isfinite(b)) or s <= 0:
        return FusionParams(fitted_on=f"{source} (fit failed: defaults)")
    if s == 20.0 and b == -8.0:
        # L-BFGS stops at once when the simulation gives it nothing to move for (e.g. a head that
        # is always right by a wide margin): say so instead of claiming a fit.
        return FusionParams(
            fitted_on=f"{source} ({len(idx)} photos; the fit did not move: defaults)"
        )
    return FusionParams(scale=s, bias=b, fitted_on=f"{source} ({len(idx)} photos)")


def open_set_threshold(best_cosines: np.ndarray, false_alarm_rate: float = 0.02) -> float:
    """The cosine below which a photo is "possibly a new category": the ``false_alarm_rate``
    quantile of the best cosines of held-out photos of known categories."""
    if len(best_cosines) == 0:
        return -1.0
    return float(np.quantile(np.asarray(best_cosines, dtype=np.float64), false_alarm_rate))
