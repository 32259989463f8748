"""Tests for catalog_ai.evaluation.metrics against numbers computed by hand in the comments
(the tree and the photos are drawn in :mod:`.cases`)."""

from __future__ import annotations

import json

import numpy as np
import pytest

from catalog_ai.errors import CatalogAIError, EvaluationError
from catalog_ai.evaluation import EvaluationResult, coverage_precision_curve, evaluate_arrays
from catalog_ai.model.decision import Decider, Thresholds
from catalog_ai.taxonomy import Taxonomy

from .cases import THRESHOLDS, node_probs_of


def test_counts_and_leaf_accuracy(result: EvaluationResult) -> None:
    m = result.metrics
    assert m["n_images"] == 8
    assert m["n_leaf_labels"] == 7 and m["n_inner_labels"] == 1  # p4 is labelled "A > A2"
    assert m["model_version"] == "v-test"
    # Top-1 leaves: p0 A2x ok, p1 A2x (true A2y), p2 B ok, p3 C2 (true C1), p5 A1 (true C2),
    # p6 A1 ok, p7 C2 (true C1) -> 3/7.
    assert m["leaf_accuracy"] == pytest.approx(3 / 7)
    assert result.leaf_labelled.tolist() == [True, True, True, True, False, True, True, True]


def test_depth_accuracy(result: EvaluationResult) -> None:
    m = result.metrics
    # Depth 1 (A, B, C), all 8 photos: only p5 (A .75, true C) is wrong -> 7/8.
    # Depth 2 (A1, A2, C1, C2), the 7 photos deeper than 1 (not p2):
    #   p0 A2 ok, p1 A2 ok, p3 C2 (C1) wrong, p4 A2 ok, p5 A1 (C2) wrong, p6 A1 ok,
    #   p7 C2 (C1) wrong -> 4/7.
    # Depth 3 (A2x, A2y), p0 and p1: p0 A2x ok, p1 A2x .35 > A2y .30 wrong -> 1/2.
    assert m["depth_accuracy"] == pytest.approx([7 / 8, 4 / 7, 1 / 2])
    assert m["depth_counts"] == [8, 7, 2]
    assert m["coarse_accuracy"] == pytest.approx(4 / 7)


def test_top_k(result: EvaluationResult) -> None:
    m = result.metrics
    # Rank of the true leaf among the 6 leaves (0 = top): p0 0, p1 1 (A2x .35 above), p2 0,
    # p3 1 (C2 above), p5 5 (C2 .05 is the lowest leaf), p6 0, p7 2 (C2 .72, B .12 above).
    assert m["top5_accuracy"] == pytest.approx(6 / 7)  # all but p5
    assert m["top_k"] == 2
    assert m["top2_accuracy"] == pytest.approx(5 / 7)  # p0, p1, p2, p3, p6


def test_top_k_ties_follow_leaf_order(taxonomy: Taxonomy) -> None:
    # True leaf C2 (.1) ties with A2x, A2y, B, C1 (.1 each), behind A1 (.5). A stable sort puts
    # the four earlier leaves first, so C2 ranks 5th (index 5): outside the top 5, inside top 6.
    probs = node_probs_of(taxonomy, [[0.5, 0.1, 0.1, 0.1, 0.1, 0.1]])
    m = evaluate_arrays(
        probs, [taxonomy.row("C > C2")], taxonomy, thresholds=THRESHOLDS, top_k=6
    ).metrics
    assert m["top5_accuracy"] == 0.0
    assert m["top6_accuracy"] == 1.0


def test_hierarchical_scores_and_decisions(result: EvaluationResult, taxonomy: Taxonomy) -> None:
    m = result.metrics
    # Back-off decisions at 0.5 (|P| decision path, |T| true path, |P&T| shared prefix):
    #   p0 A>A2>A2x (leaf)   3 3 3   right
    #   p1 A>A2 (A2x .35)    2 3 2   right (an ancestor of the truth)
    #   p2 abstain (B .42)   0 1 0
    #   p3 C>C2              2 2 1   wrong
    #   p4 A>A2 (A2x .40)    2 2 2   right (the inner label itself)
    #   p5 A>A1              2 2 0   wrong
    #   p6 A>A1              2 2 2   right
    #   p7 C>C2              2 2 1   wrong
    # sums: |P| 15, |T| 17, |P&T| 11
    decided = ["A > A2 > A2x", "A > A2", "", "C > C2", "A > A2", "A > A1", "A > A1", "C > C2"]
    assert [taxonomy.row(p) if p else -1 for p in decided] == result.decision_rows.tolist()
    assert m["hierarchical_precision"] == pytest.approx(11 / 15)
    assert m["hierarchical_recall"] == pytest.approx(11 / 17)
    assert m["hierarchical_f1"] == pytest.approx(2 * 11 / (15 + 17))  # 0.6875
    d = m["decision"]
    assert d["threshold"] == 0.5
    assert d["leaf"] == pytest.approx(5 / 8)
    assert d["inner"] == pytest.approx(2 / 8)
    assert d["abstained"] == pytest.approx(1 / 8)
    assert d["precision"] == pytest.approx(4 / 7)  # p0, p1, p4, p6 of the 7 decided
    assert d["mean_depth"] == pytest.approx(15 / 7)
    # Auto-accept (leaf decisions with probability >= 0.8): only p6 (A1 .90), and it is right.
    assert d["auto_accepted"] == pytest.approx(1 / 8)
    assert d["auto_accept_precision"] == 1.0


def test_ece(result: EvaluationResult) -> None:
    m = result.metrics
    # Top-1 leaf confidence (correct?) in 15 bins of width 1/15:
    #   bin 5 .35 (no), bin 6 .42 (yes), bin 7 .51 (no), bin 9 .62 (no),
    #   bin 10 .70 (yes) and .72 (no): mean .71, accuracy .5, bin 13 .90 (yes).
    # ECE = (.35 + .58 + .51 + .62 + 2 * .21 + .10) / 7 = 2.58 / 7
    assert m["ece"] == pytest.approx(2.58 / 7)
    assert m["ece_bins"] == 15
    assert [b["count"] for b in m["reliability"]] == [1, 1, 1, 1, 2, 1]
    assert m["reliability"][4]["confidence"] == pytest.approx(0.71)
    assert m["reliability"][4]["accuracy"] == 0.5
    # Depth 1, max top-level probability (correct?), all 8 photos:
    #   bin 6: .42 (yes)                   -> |.42 - 1| = .58
    #   bin 11: .75 (yes), .75 (no)         -> 2 * |.75 - .5| = .50
    #   bin 12: .85 .81 .81 .82 (all yes)   -> 4 * |.8225 - 1| = .71
    #   bin 14: .94 (yes)                  -> .06
    # ECE = 1.85 / 8
    assert m["ece_by_depth"][0] == pytest.approx(1.85 / 8)
    assert len(m["ece_by_depth"]) == 3


def test_coverage_at_fixed_thresholds(result: EvaluationResult) -> None:
    m = result.metrics
    # Leaf confidences (correct?): .70 y, .35 n, .42 y, .51 n, .62 n, .90 y, .72 n.
    # t=.60 accepts .70 .62 .90 .72 -> coverage 4/7, precision 2/4.
    # t=.85 accepts .90             -> coverage 1/7, precision 1.
    # t=.95 accepts nothing         -> coverage 0, precision null.
    assert m["thresholds_used"] == {"0.95": 0.6, "0.98": 0.85, "0.99": 0.95}
    assert m["coverage_at_precision"] == pytest.approx({"0.95": 4 / 7, "0.98": 1 / 7, "0.99": 0.0})
    assert m["precision_at_threshold"]["0.95"] == pytest.approx(0.5)
    assert m["precision_at_threshold"]["0.98"] == 1.0
    assert m["precision_at_threshold"]["0.99"] is None
    # Oracle (chosen on these photos): from the top, .90 y (1/1), .72 n (1/2)... only the first
    # photo keeps precision >= .95, so every target gets threshold .90 and coverage 1/7.
    assert m["oracle_thresholds"] == pytest.approx({"0.95": 0.9, "0.98": 0.9, "0.99": 0.9})
    assert m["oracle_coverage_at_precision"] == pytest.approx(
        {k: 1 / 7 for k in ("0.95", "0.98", "0.99")}
    )


def test_missing_threshold_is_null(taxonomy: Taxonomy, arrays) -> None:
    probs, truth = arrays
    m = evaluate_arrays(probs, truth, taxonomy, thresholds=Thresholds()).metrics
    assert m["thresholds_used"] == {"0.95": None, "0.98": None, "0.99": None}
    assert m["coverage_at_precision"]["0.95"] is None
    assert m["oracle_coverage_at_precision"]["0.95"] == pytest.approx(1 / 7)


def test_branches_and_confused_pairs(result: EvaluationResult) -> None:
    m = result.metrics
    # Leaf-labelled photos by top level: A p0 ok, p1 no, p6 ok; B p2 ok; C p3, p5, p7 all wrong.
    assert m["accuracy_by_top_level"] == {
        "A": {"accuracy": pytest.approx(2 / 3), "count": 3},
        "B": {"accuracy": 1.0, "count": 1},
        "C": {"accuracy": 0.0, "count": 3},
    }
    # C1 -> C2 twice (p3, p7), then the single ones in leaf order: A2y -> A2x (p1), C2 -> A1 (p5).
    assert m["confused_pairs"] == [
        {"true": "C > C1", "predicted": "C > C2", "count": 2},
        {"true": "A > A2 > A2y", "predicted": "A > A2 > A2x", "count": 1},
        {"true": "C > C2", "predicted": "A > A1", "count": 1},
    ]


def test_metrics_are_json_safe(result: EvaluationResult) -> None:
    text = json.dumps(result.metrics, allow_nan=False)
    assert json.loads(text)["hierarchical_f1"] == pytest.approx(0.6875)


def test_builtin_walk_matches_decider(taxonomy: Taxonomy) -> None:
    rng = np.random.default_rng(0)
    leaf_probs = rng.dirichlet(np.full(6, 0.4), size=60)
    probs = node_probs_of(taxonomy, leaf_probs.tolist())
    truth = rng.integers(0, len(taxonomy), size=60)
    for threshold in (0.25, 0.5, 0.7):
        thresholds = Thresholds(decision=threshold, auto_accept=0.6)
        decider = Decider(taxonomy, thresholds, model_version="v")
        decisions = [decider.decide(p) for p in probs]
        ours = evaluate_arrays(probs, truth, taxonomy, thresholds=thresholds)
        theirs = evaluate_arrays(probs, truth, taxonomy, thresholds=thresholds, decisions=decisions)
        assert ours.decision_rows.tolist() == theirs.decision_rows.tolist()
        assert ours.metrics["decision"] == theirs.metrics["decision"]
        leaf_of = [taxonomy.row(taxonomy.by_path(d.leaf_path).id) for d in decisions]
        assert ours.pred_leaf_rows.tolist() == leaf_of
        assert ours.metrics["decision"]["auto_accepted"] == pytest.approx(
            np.mean([d.auto_accept for d in decisions])
        )


def test_chunked_scan_matches_single_chunk(taxonomy: Taxonomy, arrays, monkeypatch) -> None:
    from catalog_ai.evaluation import _scan

    probs, truth = arrays
    whole = evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS).metrics
    monkeypatch.setattr(_scan, "CHUNK_ELEMENTS", 2 * len(taxonomy))  # 2 photos per chunk
    assert evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS).metrics == whole


def test_coverage_precision_curve() -> None:
    # Sorted: .9 y, .8 n, .8 y (tie: accepted together), .3 n.
    t, cov, prec = coverage_precision_curve(
        np.array([0.8, 0.3, 0.9, 0.8]), np.array([False, False, True, True])
    )
    assert t.tolist() == [0.9, 0.8, 0.3]
    assert cov.tolist() == [0.25, 0.75, 1.0]
    assert prec == pytest.approx([1.0, 2 / 3, 0.5])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda p, t: (p[:, :5], t), "taxonomy has 9 nodes"),
        (lambda p, t: (p * 3, t), "not a tree-consistent probability"),
        (lambda p, t: (np.where(np.eye(8, 9, dtype=bool), np.nan, p), t), "not a tree-consistent"),
        (lambda p, t: (p, t[:3]), "true_rows must be 8 integer"),
        (lambda p, t: (p, t.astype(float)), "true_rows must be 8 integer"),
        (lambda p, t: (p, t + 9), "not a row of the taxonomy"),
        (lambda p, t: (p[:0], t[:0]), "no photos"),
    ],
)
def test_bad_inputs_raise_clear_errors(taxonomy: Taxonomy, arrays, change, message) -> None:
    probs, truth = change(*arrays)
    with pytest.raises(EvaluationError, match=message):
        evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS)


def test_bad_options_raise_clear_errors(taxonomy: Taxonomy, arrays) -> None:
    probs, truth = arrays
    with pytest.raises(EvaluationError, match="image paths for 8 photos"):
        evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS, image_paths=["x.jpg"])
    with pytest.raises(EvaluationError, match="'high' is not a precision"):
        evaluate_arrays(
            probs, truth, taxonomy, thresholds=Thresholds(auto_accept_by_precision={"high": 0.9})
        )
    with pytest.raises(EvaluationError, match="top_k"):
        evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS, top_k=0)
    assert issubclass(EvaluationError, CatalogAIError)


def test_photos_flagged_as_possibly_new_never_count_as_covered(taxonomy: Taxonomy, arrays) -> None:
    probs, truth = arrays
    decider = Decider(taxonomy, THRESHOLDS, model_version="v")
    flagged = {6, 7}  # p6 (.90, right) and p7 (.72, wrong): the product sends both to a reviewer
    decisions = [decider.decide(p, open_set=i in flagged) for i, p in enumerate(probs)]
    m = evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS, decisions=decisions).metrics
    # Leaf confidences of the photos that may auto-accept: .70 y, .35 n, .42 y, .51 n, .62 n.
    # t=.60 accepts .70 .62 -> coverage 2/7, precision 1/2; t=.85 and t=.95 accept nothing.
    assert m["coverage_at_precision"] == pytest.approx({"0.95": 2 / 7, "0.98": 0.0, "0.99": 0.0})
    assert m["precision_at_threshold"]["0.95"] == pytest.approx(0.5)
    assert m["precision_at_threshold"]["0.98"] is None
    # Oracle without the flagged photos: .70 y (1/1), .62 n (1/2): threshold .70, coverage 1/7.
    assert m["oracle_thresholds"] == pytest.approx({"0.95": 0.7, "0.98": 0.7, "0.99": 0.7})
    assert m["oracle_coverage_at_precision"] == pytest.approx(
        {k: 1 / 7 for k in ("0.95", "0.98", "0.99")}
    )
    # Unflagged decisions give the figures of the built-in walk.
    plain = [decider.decide(p) for p in probs]
    same = evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS, decisions=plain).metrics
    assert same["coverage_at_precision"] == pytest.approx(
        {"0.95": 4 / 7, "0.98": 1 / 7, "0.99": 0.0}
    )
    # The same flags given directly (callers without decisions), and a wrong length refused.
    flags = np.array([i not in flagged for i in range(len(probs))])
    direct = evaluate_arrays(
        probs, truth, taxonomy, thresholds=THRESHOLDS, acceptable=flags
    ).metrics
    assert direct["coverage_at_precision"] == m["coverage_at_precision"]
    with pytest.raises(EvaluationError, match="one flag per photo"):
        evaluate_arrays(probs, truth, taxonomy, thresholds=THRESHOLDS, acceptable=flags[:3])
