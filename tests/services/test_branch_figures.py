"""The catalogue tree's figures summary: a refresh stores exactly what a live computation gives;
a large catalogue reads the summary while it is fresh and says how old it is; a small one, a
missing or a stale summary is computed live; a category added since the refresh reads zeros."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from catalog_ai.db import Category, unit_of_work, utc_now
from catalog_ai.services.branch_figures import (
    branch_figures,
    compute_branch_stats,
    refresh_branch_figures,
)
from catalog_ai.services.browse import category_paths
from catalog_ai.services.review import accept
from catalog_ai.settings import reset_settings


@pytest.fixture
def large(monkeypatch):
    """Treat the 11-product test catalogue's figures as costly: the summary is what pages read."""
    monkeypatch.setenv("CATALOG_AI_FIGURES_LIVE_MS", "0")
    monkeypatch.setenv("CATALOG_AI_FIGURES_INTERVAL", "60")
    reset_settings()


def test_a_refresh_stores_exactly_the_live_figures(reviewed_catalog, large):
    now = utc_now()
    with unit_of_work() as s:
        live = compute_branch_stats(s)
        refresh = refresh_branch_figures(s, clock=lambda: now)
    with unit_of_work() as s:
        read = branch_figures(s, clock=lambda: now + timedelta(seconds=30))
    assert refresh.rows == len(live) > 0
    assert read.live is False and read.as_of == now
    assert read.stats == live


def test_the_summary_is_read_while_fresh_and_computed_once_stale(reviewed_catalog, large):
    now = utc_now()
    with unit_of_work() as s:
        refresh_branch_figures(s, clock=lambda: now)
    with unit_of_work() as s:  # a verdict after the refresh
        accept(s, reviewed_catalog["waiting"], reviewer="ann")
    with unit_of_work() as s:
        fresh = branch_figures(s, clock=lambda: now + timedelta(seconds=179))
        stale = branch_figures(s, clock=lambda: now + timedelta(seconds=181))  # > 3 x 60 s
        live = compute_branch_stats(s)
    assert fresh.live is False and fresh.stats != live  # as of the refresh, and it says so
    assert stale.live is True and stale.stats == live


def test_cheap_figures_and_missing_summaries_are_computed_live(reviewed_catalog, monkeypatch):
    monkeypatch.setenv("CATALOG_AI_FIGURES_LIVE_MS", "60000")  # any refresh here is cheaper
    reset_settings()
    now = utc_now()
    with unit_of_work() as s:
        assert branch_figures(s).live is True  # no summary yet
        refresh_branch_figures(s, clock=lambda: now)
        figures = branch_figures(s, clock=lambda: now)
        assert figures.live is True and figures.stats == compute_branch_stats(s)
    monkeypatch.setenv("CATALOG_AI_FIGURES_LIVE_MS", "0")
    reset_settings()
    with unit_of_work() as s:
        assert branch_figures(s, clock=lambda: now).live is False


def test_a_category_added_after_the_refresh_reads_zeros(reviewed_catalog, large):
    now = utc_now()
    with unit_of_work() as s:
        refresh_branch_figures(s, clock=lambda: now)
        veg = s.scalar(select(Category).where(Category.path == "Veg"))
        s.add(
            Category(
                path="Veg > Leek",
                name="Leek",
                depth=2,
                parent_id=veg.id,
                source="import",
                taxonomy_version=veg.taxonomy_version,
            )
        )
    with unit_of_work() as s:
        read = branch_figures(s, clock=lambda: now)
    leek = next(b for b in read.stats if b.path == "Veg > Leek")
    assert read.live is False and (leek.products, leek.classified, leek.reviewed) == (0, 0, 0)


def test_the_category_paths_read_again_once_the_tree_changed(reviewed_catalog):
    with unit_of_work() as s:
        before = category_paths(s)
        assert category_paths(s) == before  # reused
        veg = s.scalar(select(Category).where(Category.path == "Veg"))
        s.add(
            Category(
                path="Veg > Kale",
                name="Kale",
                depth=2,
                parent_id=veg.id,
                source="import",
                taxonomy_version=veg.taxonomy_version,
            )
        )
        s.flush()
        after = category_paths(s)
    assert after == sorted([*before, "Veg > Kale"], key=lambda p: tuple(p.split(" > ")))
