"""Which products a model version may (re)classify: one rule, as SQL and for a loaded product.

Waiting products (``pending``, ``processing``), and products labelled by an earlier model
(``suggested``, ``accepted`` with a model's label), that this version has not suggested for
yet. A label a person gave (``Product.labelled_by_person``: import, review, few-shot example) is
never touched, whatever the product's status. Claiming, recording, re-classification on
activation and a version's progress all use this rule.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, and_, exists

from catalog_ai.db import Product, ProductStatus, Suggestion

__all__ = [
    "MODEL_LABELLED",
    "WAITING",
    "classifiable",
    "classifiable_in_range",
    "has_suggestion",
    "still_classifiable",
]

#: Waiting for a worker.
WAITING = (ProductStatus.PENDING, ProductStatus.PROCESSING)
#: Classified by a model (a suggestion, or a model's label auto-accepted).
MODEL_LABELLED = (ProductStatus.SUGGESTED, ProductStatus.ACCEPTED)


def has_suggestion(model_version_id: int) -> ColumnElement[bool]:
    """The product has a suggestion of this model version."""
    return exists().where(
        Suggestion.product_id == Product.id, Suggestion.model_version_id == model_version_id
    )


def classifiable(model_version_id: int) -> ColumnElement[bool]:
    """The rule as a ``WHERE`` condition on :class:`Product` (see the module docstring)."""
    return and_(
        Product.status.in_((*WAITING, *MODEL_LABELLED)),
        ~Product.labelled_by_person,
        ~has_suggestion(model_version_id),
    )


def classifiable_in_range(
    model_version_id: int, after_id: int, up_to: int | None = None
) -> ColumnElement[bool]:
    """The rule for the products with ids in ``(after_id, up_to]`` (``up_to`` None: no upper
    bound), the same condition as :func:`classifiable`.

    The id range is repeated inside the suggestion check: then the planner reads only the
    range's suggestions of the version. Without it PostgreSQL may hash (or sort) every
    suggestion of the version for each chunk of a re-classification, work that grows with the
    run (measured in docs/BENCHMARKS.md, issue 16).
    """
    outer = [Product.id > after_id]
    inner = [Suggestion.product_id > after_id]
    if up_to is not None:
        outer.append(Product.id <= up_to)
        inner.append(Suggestion.product_id <= up_to)
    return and_(
        *outer,
        Product.status.in_((*WAITING, *MODEL_LABELLED)),
        ~Product.labelled_by_person,
        ~exists().where(
            Suggestion.product_id == Product.id,
            Suggestion.model_version_id == model_version_id,
            *inner,
        ),
    )


def still_classifiable(product: Product) -> bool:
    """The rule for a loaded product, re-checked under its row lock before a result is recorded
    (whether this version has a suggestion already is settled by the insert's unique key)."""
    return product.status in (*WAITING, *MODEL_LABELLED) and not product.labelled_by_person
