"""What became of the models' suggestions: per source (head, prototype, abstain) and outcome,
counted over each product's newest suggestion. For the API's Prometheus gauges; read-only.

Outcomes: the reviewer's verdict on that suggestion when there is one (``accept``,
``accept_partial``, ``correct``, ``new_category``, ``reject``); else ``auto_accepted`` (the model's
category was accepted without review), ``waiting`` (in the review queue), or the product's status
(``pending``, ``processing``, ``failed``: re-classification is under way or failed, or
``accepted`` when a person labelled it some other way).
"""

from __future__ import annotations

from sqlalchemy.orm import Session

from catalog_ai.db import LabelSource, ProductStatus, Suggestion
from catalog_ai.db.queries import newest_suggestion_outcomes

__all__ = ["suggestion_outcomes"]


def suggestion_outcomes(session: Session) -> dict[tuple[str, str], int]:
    """``(source, outcome) -> products`` over each product's newest suggestion."""
    rows = session.execute(newest_suggestion_outcomes(Suggestion.source)).all()
    out: dict[tuple[str, str], int] = {}
    for source, status, label_source, action, n in rows:
        if action is not None:
            outcome = action.value
        elif status == ProductStatus.ACCEPTED and label_source == LabelSource.MODEL:
            outcome = "auto_accepted"
        elif status == ProductStatus.SUGGESTED:
            outcome = "waiting"
        else:
            outcome = status.value
        key = (source.value, outcome)
        out[key] = out.get(key, 0) + int(n)
    return out
