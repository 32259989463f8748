"""The review page's audit view (AppTest): open audits of auto-accepted products, a person says
right or wrong, and the label becomes theirs."""

from __future__ import annotations

from sqlalchemy import select

from catalog_ai.db import Product, Review, unit_of_work
from catalog_ai.db.models.audit import Audit
from catalog_ai.services.audits import sample_audits

AUDITS = "audits (auto-accepted, drawn for checking)"


def _auto_accept(n: int) -> list[int]:
    with unit_of_work() as s:
        products = s.scalars(
            select(Product).where(Product.status == "suggested").order_by(Product.id).limit(n)
        ).all()
        ids = []
        for p in products:
            suggestion = p.suggestions[-1]
            if suggestion.category_id is None:
                continue
            p.status, p.category_id, p.label_source = "accepted", suggestion.category_id, "model"
            ids.append((p.id, suggestion.model_version_id))
        s.flush()
        for pid, mv in ids:
            sample_audits(s, [pid], model_version_id=mv, rate=1.0)
        return [pid for pid, _ in ids]


def test_audits_are_shown_and_answered(catalog, open_app) -> None:
    ids = _auto_accept(3)
    assert len(ids) >= 2
    at = open_app()
    at.selectbox(key="q-source").set_value(AUDITS).run()
    assert any(f"{len(ids)} open audits" in c.value for c in at.caption)
    first = ids[0]
    at.button(key=f"audit-ok-{first}").click().run()
    assert any("right" in s.value for s in at.success)
    with unit_of_work() as s:
        assert s.get(Product, first).label_source == "review"
        assert s.scalar(select(Audit.verdict).where(Audit.product_id == first)) == "correct"
    second = ids[1]
    with unit_of_work() as s:
        other = next(
            c
            for c in ("Fruit > Banana", "Veg > Carrot")
            if c != s.get(Product, second).category.path
        )
    at.selectbox(key=f"audit-pick-{second}").set_value(other).run()
    at.button(key=f"audit-fix-{second}").click().run()
    with unit_of_work() as s:
        p = s.get(Product, second)
        assert (p.category.path, p.label_source) == (other, "review")
        assert s.scalar(select(Review.note).where(Review.product_id == second)) == "audit"
    assert any(f"{len(ids) - 2} open audits" in c.value for c in at.caption)
    # the plain queue never shows an audited (accepted) product
    at.selectbox(key="q-source").set_value("(all)").run()
    with unit_of_work() as s:
        titles = {s.get(Product, i).title for i in ids}
    assert at.subheader and at.subheader[0].value not in titles
