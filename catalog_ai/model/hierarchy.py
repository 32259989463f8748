"""Tree-consistent probabilities over a category tree (torch).

The model scores the tree's *leaves* with one softmax; the probability of any inner node is the sum
of its leaves' probabilities. Predictions are therefore consistent with the tree by construction: a
parent is never less likely than its child, siblings never sum to more than their parent, and the
depth of a leaf does not matter (``Fruit > Avocado`` sits beside ``Fruit > Apple > Granny-Smith``).
A photo labelled only at an inner node trains the model through the same marginal: its loss is
``-log P(node) = -log sum(P(leaf) for leaf under node)``.

Everything here is linear in the number of (leaf, ancestor) pairs, so memory and time grow with
the size of the tree, never with its square.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cached_property

import torch

from catalog_ai.taxonomy import Taxonomy

__all__ = ["TreeIndex", "marginal_nll"]


class TreeIndex:
    """Index tensors of one taxonomy: class columns, node rows and their (class, node) pairs.

    The output classes ("leaves" in the names below) are the taxonomy's leaves by default. A
    model extended with few-shot categories may also output an inner node as a class of its own
    (``Fruit > Banana`` stays a class after ``Fruit > Banana > Organic`` is added below it): pass
    ``class_rows`` then. Each class's probability counts for its own node and every ancestor.
    """

    def __init__(self, taxonomy: Taxonomy, class_rows: Sequence[int] | None = None):
        self.taxonomy = taxonomy
        self.n_nodes = len(taxonomy)
        if class_rows is None:
            node_index = taxonomy.node_index
            class_rows = [node_index[i] for i in taxonomy.leaf_ids]
        class_rows = list(class_rows)
        self.n_leaves = len(class_rows)
        self.leaf_rows = torch.tensor(class_rows, dtype=torch.long)
        parents = taxonomy.parent_rows
        pair_leaf: list[int] = []
        pair_node: list[int] = []
        for column, row in enumerate(class_rows):
            while row >= 0:
                pair_leaf.append(column)
                pair_node.append(row)
                row = parents[row]
        self.pair_leaf = torch.tensor(pair_leaf, dtype=torch.long)
        self.pair_node = torch.tensor(pair_node, dtype=torch.long)
        self.node_depth = torch.tensor([n.depth for n in taxonomy], dtype=torch.long)

    @cached_property
    def _leaves_under(self) -> list[torch.Tensor]:
        """Per node row: the leaf columns below it (itself for a leaf)."""
        order = torch.argsort(self.pair_node, stable=True)
        nodes = self.pair_node[order]
        leaves = self.pair_leaf[order]
        counts = torch.bincount(nodes, minlength=self.n_nodes).tolist()
        return list(torch.split(leaves, counts))

    def leaves_under(self, node_row: int) -> torch.Tensor:
        return self._leaves_under[node_row]

    def node_probs(self, leaf_probs: torch.Tensor) -> torch.Tensor:
        """``(B, n_leaves)`` class probabilities → ``(B, n_nodes)`` node probabilities."""
        out = leaf_probs.new_zeros(leaf_probs.shape[0], self.n_nodes)
        device = leaf_probs.device
        return out.index_add_(
            1, self.pair_node.to(device), leaf_probs[:, self.pair_leaf.to(device)]
        )

    def target_mask(self, node_rows: torch.Tensor) -> torch.Tensor:
        """``(B,)`` label node rows → ``(B, n_leaves)`` bool mask of the leaves under each label."""
        mask = torch.zeros(
            node_rows.shape[0], self.n_leaves, dtype=torch.bool, device=node_rows.device
        )
        for i, row in enumerate(node_rows.tolist()):
            mask[i, self._leaves_under[row].to(node_rows.device)] = True
        return mask

    def to(self, device: torch.device | str) -> TreeIndex:
        self.leaf_rows = self.leaf_rows.to(device)
        self.pair_leaf = self.pair_leaf.to(device)
        self.pair_node = self.pair_node.to(device)
        self.node_depth = self.node_depth.to(device)
        return self


def marginal_nll(
    leaf_logits: torch.Tensor,
    target_mask: torch.Tensor,
    *,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> torch.Tensor:
    """``-log P(label)`` where ``P(label)`` sums the softmax over the label's leaves.

    For a leaf label this is exactly cross-entropy. ``label_smoothing`` mixes in cross-entropy
    against the uniform distribution over leaves, as ``F.cross_entropy`` does.
    """
    log_z = torch.logsumexp(leaf_logits, dim=1)
    log_label = torch.logsumexp(leaf_logits.masked_fill(~target_mask, float("-inf")), dim=1)
    loss = log_z - log_label
    if label_smoothing > 0:
        uniform = log_z - leaf_logits.mean(dim=1)
        loss = (1 - label_smoothing) * loss + label_smoothing * uniform
    if reduction == "mean":
        return loss.mean()
    if reduction == "sum":
        return loss.sum()
    return loss
