"""Suggestions by source and outcome (the API's metrics): each product counted once, by its
newest suggestion, with the reviewer's verdict where there is one."""

from __future__ import annotations

from sqlalchemy import select

from catalog_ai.db import ModelVersion, Suggestion, unit_of_work
from catalog_ai.services.suggestion_stats import suggestion_outcomes


def test_each_verdict_and_state_is_its_own_outcome(reviewed_catalog):
    with unit_of_work() as session:
        outcomes = suggestion_outcomes(session)
    # The fixture: one upload auto-accepted, four reviewed four ways, one waiting; all "head".
    assert outcomes == {
        ("head", "auto_accepted"): 1,
        ("head", "accept"): 1,
        ("head", "correct"): 1,
        ("head", "accept_partial"): 1,
        ("head", "reject"): 1,
        ("head", "waiting"): 1,
    }


def test_a_newer_suggestion_replaces_the_older_one(reviewed_catalog):
    with unit_of_work() as session:
        m2 = session.scalar(select(ModelVersion).where(ModelVersion.version == "m2"))
        session.add(
            Suggestion(
                product_id=reviewed_catalog["waiting"],
                model_version_id=m2.id,
                path="Veg > Carrot",
                levels=[],
                confidence=0.9,
                source="prototype",
            )
        )
    with unit_of_work() as session:
        outcomes = suggestion_outcomes(session)
    assert outcomes[("prototype", "waiting")] == 1
    assert ("head", "waiting") not in outcomes
    assert sum(outcomes.values()) == 6
