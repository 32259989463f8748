"""Label provenance: which sources are a person's decision, the same in Python and in SQL, and
the closed set of values the database accepts (SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from catalog_ai.db import HUMAN_SOURCES, LabelSource, Product, ProductStatus, unit_of_work

# Written out by hand on purpose: changing who counts as a person must change this table too.
WHO_DECIDED = {
    "import": True,  # staff imported labelled photos
    "review": True,  # a reviewer's verdict
    "fewshot": True,  # example photos a person chose for `fewshot add`
    "model": False,  # auto-accepted from a model's suggestion
}


def test_every_source_is_classified_by_hand() -> None:
    assert {s.value for s in LabelSource} == set(WHO_DECIDED)
    assert {s.value: s.is_human for s in LabelSource} == WHO_DECIDED
    assert {LabelSource(v) for v, human in WHO_DECIDED.items() if human} == HUMAN_SOURCES


@pytest.mark.parametrize("source", [*WHO_DECIDED, None])
def test_product_labelled_by_person_in_python_and_sql_agree(db_url: str, source) -> None:
    expected = bool(source and WHO_DECIDED[source])
    with unit_of_work(db_url) as session:
        product = Product(title="p", status=ProductStatus.ACCEPTED, label_source=source)
        assert product.labelled_by_person is expected  # before it is stored (a plain string)
        session.add(product)
    with unit_of_work(db_url) as session:
        stored = session.scalars(sa.select(Product)).one()
        assert stored.label_source == source and stored.labelled_by_person is expected
        # In SQL: no NULL for unlabelled products, so ~labelled_by_person selects them too.
        count = sa.select(sa.func.count())
        assert session.scalar(count.where(Product.labelled_by_person)) == int(expected)
        assert session.scalar(count.where(~Product.labelled_by_person)) == int(not expected)


def test_label_source_check_constraint_rejects_unknown_values(db_url: str) -> None:
    insert = sa.text("INSERT INTO products (title, label_source) VALUES (:title, :source)")
    with unit_of_work(db_url) as session:
        session.execute(insert, {"title": "ok", "source": "fewshot"})
    for bad in ("auto", "Review", "guess"):
        with pytest.raises(IntegrityError), unit_of_work(db_url) as session:
            session.execute(insert, {"title": "bad", "source": bad})
    with unit_of_work(db_url) as session:
        assert session.scalars(sa.select(Product.label_source)).one() is LabelSource.FEWSHOT


def test_an_unknown_label_source_is_refused_before_the_database() -> None:
    # The old spelling of a model's label fails in Python, naming the value, not as a CHECK.
    with (
        pytest.raises(sa.exc.StatementError, match="'auto' is not among the defined enum"),
        unit_of_work("sqlite://") as session,
    ):
        session.connection().execute(
            sa.insert(Product.__table__).values(title="x", label_source="auto")
        )
