"""Synthetic category trees shaped like the Google product taxonomy, for scale benchmarks and tests.

The real Google file (``taxonomy-with-ids.en-US.txt``) has about 5,600 categories in 7 levels under
21 top-level categories; most categories sit at depth 3 to 5, few reach depth 7 (deeper categories
have fewer children) and most categories are leaves. :func:`synthetic_google_lines` reproduces
that shape at any size and depth, in the same ``ID - A > B > C`` line format, so building the tree
goes through the real parser (:func:`catalog_ai.taxonomy.parse_google`). :func:`synthetic_labels`
and :func:`synthetic_leaf_logits` stand in for photos labelled at leaves and inner nodes and for a
network's outputs on them.
"""

from __future__ import annotations

import random

import numpy as np
import torch

from catalog_ai.model.hierarchy import TreeIndex
from catalog_ai.taxonomy import Taxonomy, parse_google

__all__ = ["default_roots", "synthetic_google_lines", "synthetic_labels", "synthetic_leaf_logits",
           "synthetic_taxonomy"]

_WORDS = ("Home", "Garden", "Tools", "Pet", "Baby", "Toys", "Audio", "Video", "Kitchen", "Dining",
          "Outdoor", "Sports", "Office", "Craft", "Party", "Health", "Beauty")
# A parent at depth d accepts a new child with probability _DECAY ** (d - 1): wide top levels,
# narrow deep ones. Only _OPEN of new categories ever take children, so about three in four
# categories are leaves, as in Google's file (most branches end in a list of product types).
_DECAY = 0.6
_OPEN = 0.35


def default_roots(n_nodes: int) -> int:
    """Top-level categories of a tree this size: Google's 21 for big trees, fewer for small ones
    (3 for 100 nodes, like the Grocery Store tree)."""
    return min(21, max(2, n_nodes // 30))


def synthetic_google_lines(n_nodes: int, depth: int, seed: int = 0, *,
                           roots: int | None = None) -> list[str]:
    """``n_nodes`` Google-format lines (``ID - A > B``), parents listed before children, whose
    tree has exactly ``depth`` levels (one branch reaches the bottom); the same seed gives the
    same lines."""
    roots = default_roots(n_nodes) if roots is None else roots
    if depth < 1 or roots < 1:
        raise ValueError(f"depth and roots must be at least 1, got depth={depth}, roots={roots}")
    if n_nodes < roots + depth - 1:
        raise ValueError(f"{n_nodes} nodes cannot make {roots} roots and a {depth}-level branch; "
                         f"ask for at least {roots + depth - 1} nodes")
    rng = random.Random(seed)
    paths: list[tuple[str, ...]] = [(f"{rng.choice(_WORDS)} & {_WORDS[i % len(_WORDS)]} "
                                     f"Supplies {i}",) for i in range(roots)]
    for level in range(2, depth + 1):  # one branch reaches the maximum depth
        paths.append(paths[-1 if level > 2 else 0] + (f"Deep Level {level}",))
    open_rows = [i for i, p in enumerate(paths) if len(p) < depth]
    while len(paths) < n_nodes:
        parent = paths[rng.choice(open_rows)]
        if rng.random() > _DECAY ** (len(parent) - 1):  # deeper parents take fewer children
            continue
        paths.append((*parent, f"{rng.choice(_WORDS)}, {rng.choice(_WORDS)} & Co {len(paths)}"))
        if len(parent) + 1 < depth and rng.random() < _OPEN:
            open_rows.append(len(paths) - 1)
    ids = rng.sample(range(1, max(600_000, 20 * n_nodes)), n_nodes)
    body = sorted(zip(paths, ids, strict=True))  # the real file lists parents before children
    return [f"{node_id} - {' > '.join(path)}" for path, node_id in body]


def synthetic_taxonomy(n_nodes: int, depth: int, seed: int = 0, *,
                       roots: int | None = None) -> Taxonomy:
    """The tree of :func:`synthetic_google_lines`, parsed as a Google taxonomy file."""
    return parse_google(synthetic_google_lines(n_nodes, depth, seed, roots=roots),
                        source=f"<synthetic {n_nodes} nodes, {depth} levels>")


# --------------------------------------------------------------------------------------------
# Synthetic labels and scores on a tree


def synthetic_labels(tree: TreeIndex, n: int, *, inner_share: float = 0.2,
                     seed: int = 0) -> torch.Tensor:
    """``n`` label rows: a random leaf, or with probability ``inner_share`` a random inner node
    (a photo known only as ``Fruit > Apple``)."""
    rng = np.random.default_rng(seed)
    leaf_rows = tree.leaf_rows.numpy()
    inner_rows = np.setdiff1d(np.arange(tree.n_nodes), leaf_rows)
    rows = rng.choice(leaf_rows, n)
    if inner_rows.size:
        inner = rng.random(n) < inner_share
        rows[inner] = rng.choice(inner_rows, int(inner.sum()))
    return torch.from_numpy(rows).long()


def synthetic_leaf_logits(tree: TreeIndex, label_rows: torch.Tensor, *, accuracy: float = 0.7,
                          margin: float = 14.0, seed: int = 0) -> torch.Tensor:
    """Over-confident leaf logits, like a fine-tuned network's: one leaf per photo stands
    ``margin`` above noise; it lies under the photo's label with probability ``accuracy``, else
    it is a random leaf. Temperature scaling then has a finite optimum above 1."""
    gen = torch.Generator().manual_seed(seed)
    n = label_rows.shape[0]
    target = torch.empty(n, dtype=torch.long)
    for i, row in enumerate(label_rows.tolist()):
        under = tree.leaves_under(row)
        target[i] = under[torch.randint(len(under), (1,), generator=gen)]
    wrong = torch.rand(n, generator=gen) > accuracy
    target[wrong] = torch.randint(tree.n_leaves, (int(wrong.sum()),), generator=gen)
    logits = torch.randn(n, tree.n_leaves, generator=gen) * 2.0
    logits[torch.arange(n), target] += margin
    return logits
