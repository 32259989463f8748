"""The evaluation tests' photos, with numbers computed by hand in the tests' comments.

The tree (rows in brackets; leaves marked *):

    A [0]            B* [5]       C [6]
    ├─ A1* [1]                    ├─ C1* [7]
    └─ A2 [2]                     └─ C2* [8]
       ├─ A2x* [3]
       └─ A2y* [4]

Leaf columns, in row order: A1, A2x, A2y, B, C1, C2.
"""

from __future__ import annotations

import numpy as np

from catalog_ai.model.decision import Thresholds
from catalog_ai.taxonomy import Taxonomy

PATHS = ["A > A1", "A > A2 > A2x", "A > A2 > A2y", "B", "C > C1", "C > C2"]
LEAVES = ["A > A1", "A > A2 > A2x", "A > A2 > A2y", "B", "C > C1", "C > C2"]

# (true category, leaf probabilities [A1, A2x, A2y, B, C1, C2])
PHOTOS = [
    ("A > A2 > A2x", [0.05, 0.70, 0.10, 0.05, 0.05, 0.05]),  # p0
    ("A > A2 > A2y", [0.10, 0.35, 0.30, 0.05, 0.10, 0.10]),  # p1
    ("B", [0.10, 0.10, 0.08, 0.42, 0.20, 0.10]),  # p2: depth-1 leaf
    ("C > C1", [0.05, 0.05, 0.04, 0.05, 0.30, 0.51]),  # p3
    ("A > A2", [0.10, 0.40, 0.31, 0.09, 0.05, 0.05]),  # p4: inner-node label
    ("C > C2", [0.62, 0.06, 0.07, 0.12, 0.08, 0.05]),  # p5
    ("A > A1", [0.90, 0.02, 0.02, 0.02, 0.02, 0.02]),  # p6
    ("C > C1", [0.02, 0.02, 0.02, 0.12, 0.10, 0.72]),  # p7
]
# Node probabilities (sums of leaves), used below:
#        A     B     C     A1    A2    A2x   A2y   C1    C2
# p0   .85   .05   .10   .05   .80   .70   .10   .05   .05
# p1   .75   .05   .20   .10   .65   .35   .30   .10   .10
# p2   .28   .42   .30   .10   .18   .10   .08   .20   .10
# p3   .14   .05   .81   .05   .09   .05   .04   .30   .51
# p4   .81   .09   .10   .10   .71   .40   .31   .05   .05
# p5   .75   .12   .13   .62   .13   .06   .07   .08   .05
# p6   .94   .02   .04   .90   .04   .02   .02   .02   .02
# p7   .06   .12   .82   .02   .04   .02   .02   .10   .72

THRESHOLDS = Thresholds(
    decision=0.5,
    auto_accept=0.8,
    auto_accept_by_precision={"0.95": 0.6, "0.98": 0.85, "0.99": 0.95},
)


def node_probs_of(taxonomy: Taxonomy, leaf_probs: list[list[float]]) -> np.ndarray:
    """Each node's probability is the sum of its leaves' (plain Python, independent of the code)."""
    out = []
    for probs in leaf_probs:
        by_leaf = dict(zip(LEAVES, probs, strict=True))
        row = []
        for node in taxonomy:
            prefix = node.text
            row.append(
                sum(
                    p
                    for leaf, p in by_leaf.items()
                    if leaf == prefix or leaf.startswith(prefix + " > ")
                )
            )
        out.append(row)
    return np.array(out)
