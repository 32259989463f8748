"""The whole pipeline on a Google-size tree (5,600 categories, 7 levels), and memory that grows
with the tree, not with its square.

The tree comes from ``benchmarks/_trees.py`` (the generator ``benchmarks/tree_scale.py`` times);
``fit()`` itself needs photos of every leaf, so each stage it runs is tested here directly: a
training step with leaf and inner-node labels, temperature fitting, tree-consistent probabilities
and decisions, and evaluation.
"""

from __future__ import annotations

import importlib.util
import math
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
import torch
from helpers import one_torch_thread  # noqa: F401 (autouse fixture)

from catalog_ai.evaluation import evaluate_arrays
from catalog_ai.model.calibration import fit_temperature
from catalog_ai.model.decision import Decider, Thresholds
from catalog_ai.model.hierarchy import TreeIndex, marginal_nll
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.module import HierarchicalClassifierModule

THRESHOLDS = Thresholds(decision=0.5, auto_accept=0.9, auto_accept_by_precision={"0.98": 0.9})


def _load_trees() -> ModuleType:
    """``benchmarks/_trees.py`` by path: ``benchmarks`` is a folder of scripts, not a package."""
    path = Path(__file__).resolve().parents[2] / "benchmarks" / "_trees.py"
    spec = importlib.util.spec_from_file_location("_benchmark_trees", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


trees = _load_trees()


@pytest.fixture(scope="module")
def google() -> tuple[Taxonomy, TreeIndex]:
    taxonomy = trees.synthetic_taxonomy(5_600, 7)
    return taxonomy, TreeIndex(taxonomy)


def test_the_generated_tree_is_google_sized(google):
    taxonomy, tree = google
    assert (
        len(taxonomy) == 5_600
        and taxonomy.max_depth == 7
        and sum(n.depth == 1 for n in taxonomy) == 21
    )
    depths = np.bincount([n.depth for n in taxonomy])
    assert depths[3:6].sum() > 0.7 * len(taxonomy)  # most categories at depth 3 to 5
    assert 0.6 < tree.n_leaves / len(taxonomy) < 0.9
    # Deterministic: the benchmark and this test see the same tree.
    assert trees.synthetic_taxonomy(5_600, 7).fingerprint() == taxonomy.fingerprint()


def test_training_steps_with_leaf_and_inner_labels(google):
    taxonomy, _ = google
    torch.manual_seed(0)
    module = HierarchicalClassifierModule(
        backbone="tiny-cnn", taxonomy=taxonomy.to_dict(), pretrained=False, label_smoothing=0.0
    ).train()
    tree = module.tree
    rows = trees.synthetic_labels(tree, 32, inner_share=0.4, seed=1)
    assert (tree.node_depth[rows] < 7).any() and set(rows.tolist()) - set(tree.leaf_rows.tolist())
    images = torch.randint(0, 256, (32, 3, 32, 32), dtype=torch.uint8)
    optimizer = torch.optim.AdamW(module.parameters(), lr=1e-2)
    losses = []
    with warnings.catch_warnings():
        # No Trainer here, so the module's self.log() calls have nowhere to go.
        warnings.filterwarnings("ignore", message=r".*self\.log\(\)")
        for step in range(6):
            loss = module.training_step((images, rows), step)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            losses.append(loss.item())
    # The fresh head is near-uniform over the leaves, so -log P(label) starts at
    # log(n_leaves / leaves under the label): lower for an inner-node label.
    under = torch.tensor([len(tree.leaves_under(r)) for r in rows.tolist()], dtype=torch.float64)
    expected = float((math.log(tree.n_leaves) - under.log()).mean())
    assert losses[0] == pytest.approx(expected, abs=0.05)
    assert all(math.isfinite(x) for x in losses)
    assert losses[-1] < losses[0] - 1.0  # it fits the batch: gradients reach the 4,000-leaf head


def test_fit_temperature_recovers_a_known_temperature(google):
    _, tree = google
    n = 150  # photos x 4,267 leaves per evaluation: enough to pin T within a few per cent
    gen = torch.Generator().manual_seed(1)
    logits = torch.randn(n, tree.n_leaves, generator=gen) * 12
    # Labels drawn from softmax(logits / 2), a third of them only known by their parent.
    leaves = torch.multinomial((logits / 2.0).softmax(dim=1), 1, generator=gen).squeeze(1)
    rows = tree.leaf_rows[leaves]
    parents = torch.tensor(tree.taxonomy.parent_rows)[rows]
    inner = (torch.rand(n, generator=gen) < 0.33) & (parents >= 0)
    rows = torch.where(inner, parents, rows)
    mask = tree.target_mask(rows)
    t = fit_temperature(logits, mask)
    assert t == pytest.approx(2.0, rel=0.15)
    assert float(marginal_nll(logits / t, mask)) < float(marginal_nll(logits, mask))


def test_probabilities_and_decisions_are_tree_consistent(google):
    taxonomy, tree = google
    parent = np.array(taxonomy.parent_rows)
    rows = trees.synthetic_labels(tree, 64, inner_share=0.2, seed=4)
    logits = trees.synthetic_leaf_logits(tree, rows, seed=4)
    # Photo 0 is sure of a leaf at depth 7: its decision must walk all the way down.
    deep_leaf = int(np.flatnonzero(tree.node_depth[tree.leaf_rows].numpy() == 7)[0])
    logits[0] = 0.0
    logits[0, deep_leaf] = 30.0
    with torch.inference_mode():
        probs = tree.node_probs(logits.softmax(dim=1)).double().numpy()

    # float32 softmax, as served: sums agree to float32 rounding.
    assert probs[:, [n.depth == 1 for n in taxonomy]].sum(axis=1) == pytest.approx(1.0, abs=1e-5)
    children = parent >= 0
    assert (probs[:, parent[children]] >= probs[:, children] - 1e-6).all()
    # A parent's probability is the sum of its children's (all mass sits on leaves).
    sums = np.zeros_like(probs)
    np.add.at(sums.T, parent[children], probs[:, children].T)
    inner = np.setdiff1d(np.arange(len(taxonomy)), tree.leaf_rows.numpy())
    np.testing.assert_allclose(sums[:, inner], probs[:, inner], atol=1e-5)

    decider = Decider(taxonomy, THRESHOLDS, model_version="scale")
    decisions = [decider.decide(p) for p in probs]
    leaf_text = taxonomy.node(taxonomy.leaf_ids[deep_leaf]).text
    assert (decisions[0].path, decisions[0].depth, decisions[0].source) == (leaf_text, 7, "head")
    # Top 5 per depth, or every category of a depth that has fewer.
    expected_sizes = [min(5, int(c)) for c in np.bincount([n.depth for n in taxonomy])[1:]]
    for p, decision in zip(probs, decisions, strict=True):
        assert [len(level) for level in decision.levels] == expected_sizes
        for level in decision.levels:
            shown = [c.probability for c in level]
            assert shown == sorted(shown, reverse=True)
        if decision.path:  # the chosen node and every ancestor reach the threshold
            node = taxonomy.by_path(decision.path)
            prefixes = [taxonomy.by_path(node.path[:d]) for d in range(1, node.depth + 1)]
            assert all(p[taxonomy.row(a.id)] >= 0.5 for a in prefixes)


def test_evaluation_on_the_big_tree(google):
    taxonomy, tree = google
    rows = trees.synthetic_labels(tree, 300, inner_share=0.2, seed=5)
    logits = trees.synthetic_leaf_logits(tree, rows, accuracy=0.7, margin=25.0, seed=5)
    with torch.inference_mode():
        probs = tree.node_probs(logits.softmax(dim=1)).double().numpy()
    result = evaluate_arrays(probs, rows.numpy(), taxonomy, thresholds=THRESHOLDS)
    m = result.metrics

    leaf_rows = tree.leaf_rows.numpy()
    top1 = leaf_rows[probs[:, leaf_rows].argmax(axis=1)]
    labelled_at_leaf = np.isin(rows.numpy(), leaf_rows)
    assert m["n_images"] == 300 and m["n_inner_labels"] == int((~labelled_at_leaf).sum()) > 0
    assert m["leaf_accuracy"] == pytest.approx((top1 == rows.numpy())[labelled_at_leaf].mean())
    assert 0.6 < m["leaf_accuracy"] < 0.8  # the synthetic network is right 70 % of the time
    assert len(m["depth_accuracy"]) == 7 and m["depth_counts"][0] == 300
    # Top-level accuracy by hand: argmax over the 21 top-level categories vs the label's own.
    roots = np.array([taxonomy.row(n.id) for n in taxonomy if n.parent_id is None])
    nodes = list(taxonomy)
    want_root = np.array(
        [taxonomy.row(taxonomy.by_path(nodes[r].path[:1]).id) for r in rows.tolist()]
    )
    assert m["depth_accuracy"][0] == pytest.approx(
        (roots[probs[:, roots].argmax(axis=1)] == want_root).mean()
    )
    assert 0.0 < m["hierarchical_f1"] <= 1.0


def _tree_index_bytes(tree: TreeIndex) -> int:
    tensors = [tree.leaf_rows, tree.pair_leaf, tree.pair_node, tree.node_depth, *tree._leaves_under]
    return sum(t.numel() * t.element_size() for t in tensors)


def test_tree_index_memory_grows_linearly(google):
    taxonomy, tree = google
    n_pairs = tree.pair_leaf.numel()
    assert n_pairs == sum(taxonomy.node(i).depth for i in taxonomy.leaf_ids)
    assert n_pairs <= tree.n_leaves * taxonomy.max_depth
    assert sum(t.numel() for t in tree._leaves_under) == n_pairs  # no node x leaf table

    big = TreeIndex(trees.synthetic_taxonomy(4 * 5_600, 7))
    ratio = _tree_index_bytes(big) / _tree_index_bytes(tree)
    assert 3.0 < ratio < 5.0, f"4x the nodes took {ratio:.1f}x the TreeIndex bytes"
