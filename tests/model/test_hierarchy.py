"""Tree-consistent probabilities and the marginal loss, against sums done by hand.

The tree has variable depth (leaves marked *):

    Fruit                     Veg
    ├─ Apple                  └─ Carrot*
    │  ├─ Green*
    │  └─ Red*
    └─ Banana*            (a depth-2 leaf beside depth-3 leaves)

Leaf columns: Green, Red, Banana, Carrot.
"""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

from catalog_ai.model.hierarchy import TreeIndex, marginal_nll
from catalog_ai.taxonomy import Taxonomy

TREE = Taxonomy.from_paths(
    ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]
)
LEAVES = ["Fruit > Apple > Green", "Fruit > Apple > Red", "Fruit > Banana", "Veg > Carrot"]


@pytest.fixture
def tree() -> TreeIndex:
    return TreeIndex(TREE)


def row(text: str) -> int:
    return TREE.node_index[text]


def test_leaf_columns_follow_the_taxonomy(tree):
    assert TREE.leaf_ids == LEAVES
    assert tree.n_leaves == 4 and tree.n_nodes == 7
    assert tree.leaf_rows.tolist() == [row(t) for t in LEAVES]


def test_node_probs_are_hand_sums_of_leaves(tree):
    leaf = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.7, 0.05, 0.05, 0.2]])
    nodes = tree.node_probs(leaf)
    expected = [
        # Fruit, Apple, Green, Red, Banana, Veg, Carrot (by hand)
        {
            "Fruit": 0.6,
            "Fruit > Apple": 0.3,
            "Fruit > Apple > Green": 0.1,
            "Fruit > Apple > Red": 0.2,
            "Fruit > Banana": 0.3,
            "Veg": 0.4,
            "Veg > Carrot": 0.4,
        },
        {
            "Fruit": 0.8,
            "Fruit > Apple": 0.75,
            "Fruit > Apple > Green": 0.7,
            "Fruit > Apple > Red": 0.05,
            "Fruit > Banana": 0.05,
            "Veg": 0.2,
            "Veg > Carrot": 0.2,
        },
    ]
    assert nodes.shape == (2, 7)
    for b, hand in enumerate(expected):
        for text, p in hand.items():
            assert nodes[b, row(text)].item() == pytest.approx(p, abs=1e-6), (b, text)


def test_parents_never_below_children_and_roots_sum_to_one(tree):
    torch.manual_seed(0)
    leaf = torch.randn(64, 4).softmax(dim=1)
    nodes = tree.node_probs(leaf)
    for r, parent in enumerate(TREE.parent_rows):
        if parent >= 0:
            assert torch.all(nodes[:, parent] >= nodes[:, r] - 1e-7)
    # Children of an inner node partition its leaves: they sum to the parent exactly.
    for text in ("Fruit", "Fruit > Apple", "Veg"):
        children = [row(c.text) for c in TREE.children(text)]
        assert torch.allclose(nodes[:, children].sum(1), nodes[:, row(text)], atol=1e-6)
    roots = [row(r.text) for r in TREE if r.parent_id is None]
    assert torch.allclose(nodes[:, roots].sum(1), torch.ones(64), atol=1e-6)


def test_target_mask_for_leaf_and_inner_labels(tree):
    labels = torch.tensor([row("Fruit > Banana"), row("Fruit > Apple"), row("Fruit"), row("Veg")])
    mask = tree.target_mask(labels)
    assert mask.dtype == torch.bool
    assert mask.tolist() == [
        [False, False, True, False],  # a leaf covers itself only
        [True, True, False, False],  # Apple: Green and Red
        [True, True, True, False],  # Fruit: every fruit leaf, whatever its depth
        [False, False, False, True],  # Veg: Carrot
    ]


@pytest.mark.parametrize("smoothing", [0.0, 0.1, 0.3])
def test_marginal_nll_is_cross_entropy_for_leaf_labels(tree, smoothing):
    torch.manual_seed(1)
    logits = torch.randn(16, 4) * 3
    targets = torch.randint(0, 4, (16,))
    mask = tree.target_mask(tree.leaf_rows[targets])
    ours = marginal_nll(logits, mask, label_smoothing=smoothing)
    reference = F.cross_entropy(logits, targets, label_smoothing=smoothing)
    assert ours.item() == pytest.approx(reference.item(), rel=1e-5)
    per_item = marginal_nll(logits, mask, label_smoothing=smoothing, reduction="none")
    assert torch.allclose(
        per_item,
        F.cross_entropy(logits, targets, label_smoothing=smoothing, reduction="none"),
        atol=1e-5,
    )
    assert marginal_nll(logits, mask, reduction="sum").item() == pytest.approx(
        F.cross_entropy(logits, targets, reduction="sum").item(), rel=1e-5
    )


def test_marginal_nll_of_an_inner_label_is_minus_log_of_its_leaf_sum(tree):
    logits = torch.tensor([[1.0, 2.0, 0.0, -1.0]], dtype=torch.float64)
    # Hand: P(Apple) = (e^1 + e^2) / (e^1 + e^2 + e^0 + e^-1)
    z = math.exp(1) + math.exp(2) + math.exp(0) + math.exp(-1)
    p_apple = (math.exp(1) + math.exp(2)) / z
    p_fruit = (math.exp(1) + math.exp(2) + 1.0) / z
    apple = marginal_nll(logits, tree.target_mask(torch.tensor([row("Fruit > Apple")])))
    fruit = marginal_nll(logits, tree.target_mask(torch.tensor([row("Fruit")])))
    assert apple.item() == pytest.approx(-math.log(p_apple), rel=1e-6)
    assert fruit.item() == pytest.approx(-math.log(p_fruit), rel=1e-6)
    assert fruit.item() < apple.item()  # a broader label is easier to satisfy


def test_inner_label_gradient_pushes_up_every_leaf_under_the_node(tree):
    logits = torch.tensor([[0.5, -1.0, 2.0, 1.0]], requires_grad=True)
    mask = tree.target_mask(torch.tensor([row("Fruit > Apple")]))
    loss = marginal_nll(logits, mask)
    loss.backward()
    grad = logits.grad[0]
    # Gradient descent raises a logit whose gradient is negative: Green and Red (under Apple),
    # never Banana or Carrot, even though Banana is Apple's sibling under Fruit.
    assert grad[0] < 0 and grad[1] < 0
    assert grad[2] > 0 and grad[3] > 0
    # Hand: d/dl_j = p_j - p_j * [j under Apple] / P(Apple).
    p = logits.detach().softmax(1)[0]
    p_apple = p[0] + p[1]
    expected = p - p * mask[0].float() / p_apple
    assert torch.allclose(grad, expected, atol=1e-6)
    # One small step raises P(Apple).
    with torch.no_grad():
        stepped = logits - 0.1 * logits.grad
    assert (
        tree.node_probs(stepped.softmax(1))[0, row("Fruit > Apple")]
        > tree.node_probs(logits.detach().softmax(1))[0, row("Fruit > Apple")]
    )
