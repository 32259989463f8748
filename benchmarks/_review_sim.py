"""The review loop of ``benchmarks/review_loop.py``: a store's first weeks on the real services.

Each batch of uploads goes through the product's own code: ingested (:func:`ingest_paths`) and
classified by the in-process runner (the worker's pipeline), auto-accepted where the active
model's calibrated threshold allows, a share of the auto-accepted drawn for audit
(``CATALOG_AI_AUDIT_RATE``). A simulated reviewer who knows the true label then resolves the open
audits (``audits.resolve_audit``) and works the review queue least confident first
(``review.review_queue``), up to a budget per batch, through ``review.accept`` /
``review.correct``, so every verdict becomes a prototype example of the active version at once
(a memory revision). The model changes by the steps of ``_review_models.py``: calibration from
reviews while the active version's auto-accept is off, and a retrain after every
``retrain_every`` reviews, promoted only by the champion/challenger rule (one ``promote`` call).

Kept apart from the script so the tests can run it on tiny synthetic photos and the tiny
built-in backbone. The loop knows the truth only to play the reviewer and to score.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import _review_models
from sqlalchemy import func, select

from catalog_ai.db import Category, LabelSource, Product, PrototypeRevision, unit_of_work
from catalog_ai.dispatch import Dispatcher
from catalog_ai.jobs.ingest import ingest_paths
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.training.data import Example
from catalog_ai.worker.dispatch import drain

#: ``train(examples, out_dir) -> bundle dir``: the recipe of every (re)train.
Trainer = Callable[[list[Example], Path], Path]
#: ``promote(session, candidate, held_out=[product ids]) -> dict`` with ``promoted``,
#: ``reason``, ``n_compared``, ``product_ids`` (compared on); activating is its job.
Promote = Callable[..., dict]


@dataclass(frozen=True)
class LoopConfig:
    budget: int = 200  # queue reviews per batch (at most); audits are resolved besides
    retrain_every: int = 300  # K: reviews between retrains
    compare_recent: int = 300  # recent person-labelled products held out of a retrain
    margin: float = 0.01  # leaf accuracy a challenger must win by (0.01 = 1 point)
    min_calibration: int = 50  # labelled products needed to calibrate on
    reviewer: str = "sim"


@dataclass
class BatchFigures:
    batch: int
    uploads: int
    model: str
    auto_accepted: int
    auto_share: float
    auto_precision: float | None  # against the true label
    leaf_accuracy: float  # suggestion path == true leaf, over the batch's suggestions
    reviews: int  # queue reviews
    reviews_per_100: float
    audits: int = 0  # audits resolved during this batch
    # The active version's audit estimate of its auto-accept precision after this batch's
    # audits, and its true auto-accept precision so far (every product it auto-accepted).
    audit_estimate: dict | None = None
    version_true_precision: float | None = None
    reviewed_confidences: list[float] = field(default_factory=list)
    queue_left: int = 0
    next_in_queue: float | None = None  # the least confident suggestion left unreviewed
    corrections: int = 0
    revisions_added: int = 0
    duplicates: int = 0
    calibrated: str | None = None  # the new version, when calibrated from reviews after it
    retrain: dict | None = None
    seconds: float = 0.0

    def to_dict(self) -> dict:
        out = asdict(self)
        out.pop("reviewed_confidences")
        return out


class ReviewLoop:
    """The simulation's state: who labelled what, what each version trained on and auto-accepted."""

    def __init__(
        self,
        config: LoopConfig,
        *,
        truth: dict[str, str],
        train: Trainer,
        promote: Promote,
        dispatcher: Dispatcher,
        work_dir: Path,
    ):
        self.config, self.truth, self.train, self.promote = config, truth, train, promote
        self.dispatcher, self.work_dir = dispatcher, work_dir
        self.trained_on: dict[str, set[int]] = {}  # version -> product ids it trained on
        self.compared: dict[str, set[int]] = {}  # challenger -> products it was judged on
        self.label_of: dict[int, str] = {}  # product id -> true path (uploads)
        # (product, version) -> whether that version's auto-accept was right: every auto-accept,
        # also of re-classified products (an activation re-classifies what no person labelled).
        self.auto_events: dict[tuple[int, str], bool] = {}
        self.reviews_since_retrain = 0
        self.retrains = 0
        self.history: list[BatchFigures] = []
        self.next_confidence: float | None = None

    # --- the model (the steps are in _review_models) -------------------------------------

    def first_model(self) -> str:
        return _review_models.first_model(self)

    def active(self) -> tuple[str, Path, bool]:
        from catalog_ai.services.models import active_model

        with unit_of_work() as session:
            row = active_model(session)
            assert row is not None
            version, path = row.version, Path(row.bundle_path)
        return version, path, ModelBundle.load(path).thresholds.auto_accept_enabled

    def after_model_change(self) -> None:
        """What an activation's re-classification auto-accepted (call after its drain)."""
        self._note_auto_accepted()

    # --- one batch ------------------------------------------------------------------------

    def run_batch(self, number: int, files: Sequence[Path]) -> BatchFigures:
        started = time.monotonic()
        summary = ingest_paths(list(files), dispatcher=self.dispatcher, chunk_size=16)
        drain(self.dispatcher)
        ids = [pid for _, pid in summary.ingested]
        for file, pid in summary.ingested:
            self.label_of[pid] = self.truth[str(Path(file))]
        self._note_auto_accepted()
        version = self.active()[0]
        state = self._state(ids)
        auto = [pid for pid in ids if state[pid][0] == LabelSource.MODEL]
        right = [pid for pid in auto if state[pid][1] == self.label_of[pid]]
        suggested = [pid for pid in ids if state[pid][2] is not None]
        leaf_right = sum(state[pid][2] == self.label_of[pid] for pid in suggested)
        audits = self._resolve_audits()
        reviewed, corrections, revisions = self._review()
        with unit_of_work() as session:
            from catalog_ai.services.review import queue_count

            left = queue_count(session)
        mine = [ok for (_, v), ok in self.auto_events.items() if v == version]
        figures = BatchFigures(
            batch=number,
            uploads=len(ids),
            model=version,
            auto_accepted=len(auto),
            auto_share=len(auto) / len(ids) if ids else 0.0,
            auto_precision=len(right) / len(auto) if auto else None,
            leaf_accuracy=leaf_right / len(suggested) if suggested else float("nan"),
            reviews=len(reviewed),
            reviews_per_100=100.0 * len(reviewed) / len(ids) if ids else 0.0,
            audits=audits,
            audit_estimate=self.audit_estimate(version),
            version_true_precision=sum(mine) / len(mine) if mine else None,
            reviewed_confidences=[c for _, c in reviewed],
            queue_left=left,
            next_in_queue=self.next_confidence,
            corrections=corrections,
            revisions_added=revisions,
            duplicates=len(summary.duplicates),
        )
        self.reviews_since_retrain += len(reviewed) + audits
        if not self.active()[2]:
            figures.calibrated = _review_models.calibrate_from_reviews(self)
            self.after_model_change()
        # Not right after a calibration: nothing is labelled yet after the version it made, so
        # there would be nothing to hold out and judge the challenger on.
        if self.reviews_since_retrain >= self.config.retrain_every and not figures.calibrated:
            self.reviews_since_retrain = 0
            figures.retrain = _review_models.retrain(self)
            self.after_model_change()
        figures.seconds = round(time.monotonic() - started, 1)
        self.history.append(figures)
        return figures

    def _state(self, ids: Sequence[int]) -> dict[int, tuple[str | None, str | None, str | None]]:
        """``{product: (label source, its category path, its current suggestion's path)}``."""
        from catalog_ai.db import Suggestion

        with unit_of_work() as session:
            products = session.execute(
                select(Product.id, Product.label_source, Category.path, Suggestion.path)
                .outerjoin(Category, Category.id == Product.category_id)
                .outerjoin(Suggestion, Suggestion.id == Product.suggestion_id)
                .where(Product.id.in_(ids))
            ).all()
        return {pid: (src, path, sug) for pid, src, path, sug in products}

    def _note_auto_accepted(self) -> None:
        from catalog_ai.db import ModelVersion, Suggestion

        with unit_of_work() as session:
            rows = session.execute(
                select(Product.id, ModelVersion.version, Category.path)
                .join(Suggestion, Suggestion.id == Product.suggestion_id)
                .join(ModelVersion, ModelVersion.id == Suggestion.model_version_id)
                .join(Category, Category.id == Product.category_id)
                .where(Product.label_source == LabelSource.MODEL)
            ).all()
        for pid, version, path in rows:
            if pid in self.label_of:
                self.auto_events.setdefault((pid, version), path == self.label_of[pid])

    def audit_estimate(self, version: str) -> dict | None:
        from catalog_ai.services.live_precision import live_precision

        with unit_of_work() as session:
            live = live_precision(session, version)
        p = live.auto_accept
        return None if p is None else p.to_dict()

    def _resolve_audits(self) -> int:
        """The reviewer answers every open audit with the true category."""
        from catalog_ai.errors import CatalogAIError
        from catalog_ai.services.audits import open_audits, resolve_audit

        with unit_of_work() as session:
            items = open_audits(session, limit=100_000)
        done = 0
        for item in items:
            truth = self.label_of.get(item.product_id)
            if truth is None:
                continue
            try:
                with unit_of_work() as session:
                    resolve_audit(
                        session, item.product_id, reviewer=self.config.reviewer, category_path=truth
                    )
                done += 1
            except CatalogAIError:
                continue  # re-classified meanwhile: no longer an auto-accept to audit
        return done

    def _review(self) -> tuple[list[tuple[int, float]], int, int]:
        """The reviewer works the queue least confident first, up to the budget: accepts a
        suggestion that names the true leaf, else corrects it to the true leaf. Each verdict
        is its own transaction (one click). Returns ((product, confidence) reviewed, how many
        were corrections, memory revisions added)."""
        from catalog_ai.services import review

        with unit_of_work() as session:
            before = session.scalar(select(func.count()).select_from(PrototypeRevision)) or 0
            queue = review.review_queue(session, limit=self.config.budget)
        done, corrections = [], 0
        for item in queue:
            truth = self.label_of.get(item.product_id)
            if truth is None:
                continue  # not an upload of this simulation
            with unit_of_work() as session:
                if item.path == truth:
                    review.accept(session, item.product_id, reviewer=self.config.reviewer)
                else:
                    review.correct(
                        session,
                        item.product_id,
                        reviewer=self.config.reviewer,
                        category_path=truth,
                    )
                    corrections += 1
            done.append((item.product_id, item.confidence))
        with unit_of_work() as session:
            after = session.scalar(select(func.count()).select_from(PrototypeRevision)) or 0
            waiting = review.review_queue(session, limit=1)
        self.next_confidence = waiting[0].confidence if waiting else None
        return done, corrections, after - before
