"""Live precision: Wilson's interval, the stratified estimate and its weights, worked by hand."""

from __future__ import annotations

import math

import pytest
from sqlalchemy import select

from catalog_ai.db import Category, Product, unit_of_work
from catalog_ai.services.audits import resolve_audit, sample_audits
from catalog_ai.services.live_precision import (
    Stratum,
    live_precision,
    stratified_estimate,
    stratum_weights,
    weighted_examples,
    wilson_interval,
)
from catalog_ai.services.review import accept, correct
from services.audit_catalog import add_product, add_version


def test_wilson_interval_by_hand() -> None:
    # 8 of 10: the textbook 0.4902-0.9433.
    low, high = wilson_interval(8, 10)
    assert (round(low, 4), round(high, 4)) == (0.4902, 0.9433)
    # 0 of 30: centre = half = (1.96^2/60) / (1 + 1.96^2/30) = 0.05676: (0, 0.1135).
    assert wilson_interval(0, 30) == (0.0, pytest.approx(0.11352, abs=1e-5))
    assert wilson_interval(0, 0) == (0.0, 1.0)


def test_the_stratified_estimate_by_hand() -> None:
    # 900 auto-accepted, 30 audited, 29 right; 100 sent to review, all reviewed, 60 right:
    # (900 * 29/30 + 100 * 0.6) / 1000 = (870 + 60) / 1000 = 0.93, where the unweighted mean of
    # the 130 verdicts (89/130 = 0.685) would describe the hard photos.
    est = stratified_estimate([Stratum("auto", 900, 30, 29), Stratum("review", 100, 100, 60)])
    assert est is not None and est.estimate == pytest.approx(0.93)
    # variance = 0.9^2 (29/30)(1/30)/30 + 0.1^2 (0.6)(0.4)/100 = 0.00087 + 0.000024 = 0.000894
    n_eff = 0.93 * 0.07 / 0.000894
    assert (est.low, est.high) == pytest.approx(wilson_interval(0.93 * n_eff, n_eff), abs=1e-6)
    assert est.low < 0.93 < est.high and est.n == 130
    # A stratum with products and no verdict: unknown, not a figure about the other stratum.
    assert (
        stratified_estimate([Stratum("auto", 900, 0, 0), Stratum("review", 100, 100, 60)]) is None
    )
    # An empty stratum does not count.
    only = stratified_estimate([Stratum("auto", 0, 0, 0), Stratum("review", 100, 50, 40)])
    assert only is not None and only.estimate == pytest.approx(0.8)


def test_weights_undo_the_sampling() -> None:
    strata = [
        Stratum("auto", 4, 2, 1),
        Stratum("r0", 1, 1, 0),
        Stratum("r5", 2, 2, 2),
        Stratum("r85", 1, 2, 2, donor="r5"),
    ]
    # each audit stands for 4/2 auto-accepts; r5's two reviews for r5's 2 and r85's 1 products.
    assert stratum_weights(strata) == {"auto": 2.0, "r0": 1.0, "r5": 1.5}


def _catalog():
    """4 auto-accepted at 0.99 (2 audited: one confirmed, one corrected); sent to review at
    0.3 (corrected), 0.6 and 0.65 (accepted), 0.9 (not reviewed yet)."""
    with unit_of_work() as s:
        mv = add_version(s, active=False)
        auto = [add_product(s, mv, f"a{i}", "Fruit > Apple", 0.99, auto=True) for i in range(4)]
        sample_audits(s, auto[:2], model_version_id=mv.id, rate=1.0)
        sample_audits(s, auto[2:], model_version_id=mv.id, rate=0.0)
        low = add_product(s, mv, "r1", "Fruit > Apple", 0.3, auto=False)
        mid = [
            add_product(s, mv, f"r{i}", "Veg > Carrot", c, auto=False)
            for i, c in ((2, 0.6), (3, 0.65))
        ]
        add_product(s, mv, "r4", "Fruit > Banana", 0.9, auto=False)
    with unit_of_work() as s:
        resolve_audit(s, auto[0], reviewer="alice")
        resolve_audit(s, auto[1], reviewer="alice", category_path="Veg > Carrot")
        correct(s, low, reviewer="bob", category_path="Fruit > Banana")
        for pid in mid:
            accept(s, pid, reviewer="bob")
    return auto, low, mid


def test_live_precision_of_a_version_by_hand(catalog) -> None:
    _catalog()
    with unit_of_work() as s:
        live = live_precision(s, "m1")
    # Auto-accept: 1 of 2 audits confirmed.
    assert live.auto_accept is not None and live.auto_accept.estimate == 0.5
    assert (live.auto_accept.low, live.auto_accept.high) == wilson_interval(1, 2)
    # Strata: auto 4 products (2 checked, 1 right); band 0-0.5: 1 (1, 0); band 0.5-0.7: 2
    # (2, 2); band 0.85-0.95: 1 product, none reviewed, borrows band 0.5 (the nearest below
    # with reviews). Leaf accuracy = (4 * 1/2 + 1 * 0 + 2 * 1 + 1 * 1) / 8 = 5/8.
    assert live.leaf_accuracy is not None and live.leaf_accuracy.estimate == pytest.approx(0.625)
    assert (live.auto_accepted, live.audited, live.audits_resolved) == (4, 2, 2)
    assert (live.sent_to_review, live.reviewed) == (4, 3)
    assert math.isclose(sum(s.size for s in live.strata), 8)


def test_weighted_examples_carry_the_stratum_weights(catalog) -> None:
    auto, low, mid = _catalog()
    with unit_of_work() as s:
        rows = {pid: (path, w) for pid, path, w in weighted_examples(s)}
    assert rows == {
        auto[0]: ("Fruit > Apple", 2.0),
        auto[1]: ("Veg > Carrot", 2.0),
        low: ("Fruit > Banana", 1.0),
        mid[0]: ("Veg > Carrot", 1.5),
        mid[1]: ("Veg > Carrot", 1.5),
    }


def test_an_open_audit_a_person_settled_otherwise_counts_with_their_label(catalog) -> None:
    with unit_of_work() as s:
        mv = add_version(s)
        pid = add_product(s, mv, "a", "Fruit > Apple", 0.99, auto=True)
        sample_audits(s, [pid], model_version_id=mv.id, rate=1.0)
        product = s.get(Product, pid)
        product.label_source = "import"  # a person's label, another category
        product.category_id = s.scalar(select(Category.id).where(Category.path == "Veg > Carrot"))
    with unit_of_work() as s:
        live = live_precision(s, "m1")
    assert live.auto_accept is not None and live.auto_accept.estimate == 0.0
