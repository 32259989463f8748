"""The review loop of ``benchmarks/review_loop.py``: a store's first weeks on the real services.

Each batch of uploads goes through the product's own code: ingested (:func:`ingest_paths`) and
classified by the in-process runner (the worker's pipeline), auto-accepted where the active
model's calibrated threshold allows; a simulated reviewer (who knows the true label) then works
the review queue least confident first (:func:`review.review_queue`), up to a budget per batch,
through :func:`review.accept` / :func:`review.correct`, so every verdict becomes a prototype
example of the active version at once (a memory revision). Two things change the model:

- **calibration from reviews** (``catalog-ai calibrate --from-reviews``) once the active
  version's auto-accept is off and enough products are reviewed: the quick model's own hold-out
  shares the catalogue's photo sessions and cannot switch auto-accept on honestly;
- **a retrain from the catalogue** after every ``retrain_every`` reviews, promoted only by the
  champion/challenger rule (``promote``, one swappable call): the challenger trains on every
  person's label except the ``compare_recent`` most recently reviewed products, which it is
  calibrated on and which both versions are compared on (neither trained on them).

Kept apart from the script so the tests can run it on tiny synthetic photos and the tiny
built-in backbone. The loop knows the truth only to play the reviewer and to score.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
from sqlalchemy import func, select

from catalog_ai.db import (
    HUMAN_SOURCES,
    Category,
    LabelSource,
    Product,
    ProductImage,
    PrototypeRevision,
    Review,
    Suggestion,
    unit_of_work,
)
from catalog_ai.dispatch import Dispatcher
from catalog_ai.jobs.ingest import ingest_paths
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.photos.store import MediaStore
from catalog_ai.settings import get_settings
from catalog_ai.training.data import Example
from catalog_ai.worker.dispatch import drain

#: ``train(examples, held_out, out_dir) -> bundle dir``: the recipe of every (re)train.
Trainer = Callable[[list[Example], list[Example], Path], Path]


@dataclass(frozen=True)
class LoopConfig:
    budget: int = 200  # reviews the reviewer makes per batch (at most)
    retrain_every: int = 300  # K: reviews between retrains
    compare_recent: int = 300  # most recent reviewed products held out of a retrain, compared on
    margin: float = 0.01  # leaf accuracy a challenger must win by (0.01 = 1 point)
    min_calibration: int = 50  # reviews needed before calibrating from reviews
    reviewer: str = "sim"


@dataclass
class Decision:
    """What the promotion step decided about a challenger."""

    promoted: bool
    reason: str
    champion_accuracy: float | None = None
    challenger_accuracy: float | None = None
    n_compared: int = 0


#: ``promote(session, champion, challenger, compared) -> Decision``; ``compared``: (media file,
#: true path) of human-labelled products neither version trained on. Activation is its job.
Promote = Callable[..., Decision]


@dataclass
class BatchFigures:
    batch: int
    uploads: int
    model: str
    auto_accepted: int
    auto_share: float
    auto_precision: float | None  # against the true label
    audit_estimate: float | None
    leaf_accuracy: float  # suggestion path == true leaf, over the batch's suggestions
    reviews: int
    reviews_per_100: float
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
    """The simulation's state: who labelled what, what each version trained on."""

    def __init__(
        self,
        config: LoopConfig,
        *,
        truth: dict[str, str],
        train: Trainer,
        promote: Promote,
        dispatcher: Dispatcher,
        work_dir: Path,
        audit: Callable[..., float | None] | None = None,
        log: Callable[[str], None] = print,
    ):
        self.config, self.truth, self.train, self.promote = config, truth, train, promote
        self.dispatcher, self.work_dir, self.audit, self.log = dispatcher, work_dir, audit, log
        self.trained_on: dict[str, set[int]] = {}  # version -> product ids it trained on
        self.compared: dict[str, set[int]] = {}  # challenger -> products it was judged on
        self.label_of: dict[int, str] = {}  # product id -> true path (uploads)
        self.reviews_since_retrain = 0
        self.retrains = 0
        self.history: list[BatchFigures] = []
        self.next_confidence: float | None = None

    # --- the model ------------------------------------------------------------------------

    def human_examples(self) -> list[tuple[int, int | None, Example]]:
        """``(product id, newest review id or None, example)`` of every product a person
        labelled: what ``train --from-catalog`` learns from."""
        media = MediaStore(get_settings().media_dir)
        with unit_of_work() as session:
            last_review = (
                select(Review.product_id, func.max(Review.id).label("rid"))
                .group_by(Review.product_id)
                .subquery()
            )
            rows = session.execute(
                select(Product.id, ProductImage.stored_path, Product.category_id, last_review.c.rid)
                .join(ProductImage, ProductImage.product_id == Product.id)
                .outerjoin(last_review, last_review.c.product_id == Product.id)
                .where(Product.label_source.in_(list(HUMAN_SOURCES)))
                .where(Product.category_id.is_not(None))
                .order_by(Product.id, ProductImage.id)
            ).all()
            paths = dict(session.execute(select(Category.id, Category.path)).all())
        seen: set[int] = set()
        out = []
        for pid, stored, cid, rid in rows:
            if pid not in seen:  # a product's first photo, as reviewed_examples uses
                seen.add(pid)
                out.append((pid, rid, Example(media.path(stored), paths[cid])))
        return out

    def first_model(self) -> str:
        """Train the first model on the labelled catalogue, register and activate it."""
        examples = self.human_examples()
        bundle_dir = self.train([e for _, _, e in examples], [], self.work_dir / "model-0")
        version = self._register(bundle_dir, activate=True)
        self.trained_on[version] = {pid for pid, _, _ in examples}
        return version

    def _register(self, bundle_dir: Path, *, activate: bool) -> str:
        from catalog_ai.services.models import activate_model, register_model

        with unit_of_work() as session:
            row = register_model(session, bundle_dir)
            if activate:
                activate_model(session, row.version, dispatcher=self.dispatcher)
            version = row.version
        drain(self.dispatcher)
        return version

    def active(self) -> tuple[str, Path, bool]:
        from catalog_ai.services.models import active_model

        with unit_of_work() as session:
            row = active_model(session)
            assert row is not None
            version, path = row.version, Path(row.bundle_path)
        return version, path, ModelBundle.load(path).thresholds.auto_accept_enabled

    def calibrate_from_reviews(self) -> str | None:
        """``catalog-ai calibrate --from-reviews`` on the active model: a new derived version,
        activated (it re-classifies what no person labelled)."""
        from catalog_ai.inference.recalibrate import recalibrate_bundle
        from catalog_ai.services.review import reviewed_examples
        from catalog_ai.services.versions import adopt_derived, derivation_base

        with unit_of_work() as session:
            parent, memory, revision = derivation_base(session, None)
            files, labels = reviewed_examples(session)
        if len(files) < self.config.min_calibration:
            return None
        bundle, _, _ = recalibrate_bundle(
            parent.path,
            files,
            labels,
            source=f"{len(files)} reviewed products",
            skip_unknown=True,
            memory=memory,
            memory_revision=revision,
        )
        with unit_of_work() as session:
            row, _ = adopt_derived(session, bundle, dispatcher=self.dispatcher)
            assert row is not None
            version = row.version
        drain(self.dispatcher)
        # A derived version trained on what its parent trained on.
        self.trained_on[version] = self.trained_on.get(parent.version, set())
        return version

    def retrain(self) -> dict:
        """Train a challenger from the catalogue, holding out the most recent reviews; the
        promotion step decides on those (human-labelled products neither version trained on)."""
        started = time.monotonic()
        champion, _, _ = self.active()
        examples = self.human_examples()
        reviewed = sorted((rid, pid) for pid, rid, _ in examples if rid is not None)
        recent = {pid for _, pid in reviewed[-self.config.compare_recent :]}
        train = [e for pid, _, e in examples if pid not in recent]
        held = [(pid, e) for pid, _, e in examples if pid in recent]
        self.retrains += 1
        bundle_dir = self.train(
            train, [e for _, e in held], self.work_dir / f"model-{self.retrains}"
        )
        challenger = self._register(bundle_dir, activate=False)
        self.trained_on[challenger] = {pid for pid, _, _ in examples if pid not in recent}
        champion_saw = self.trained_on.get(champion, set())
        neither = [(pid, e) for pid, e in held if pid not in champion_saw]
        self.compared[challenger] = {pid for pid, _ in neither}
        compared = [(e.file, e.label) for _, e in neither]
        trained_s = time.monotonic() - started
        with unit_of_work() as session:
            decision = self.promote(
                session, champion=champion, challenger=challenger, compared=compared
            )
        drain(self.dispatcher)
        return {
            "challenger": challenger,
            "champion": champion,
            "trained_on": len(train),
            "train_seconds": round(trained_s, 1),
            "seconds": round(time.monotonic() - started, 1),
            **asdict(decision),
        }

    # --- one batch ------------------------------------------------------------------------

    def run_batch(self, number: int, files: Sequence[Path]) -> BatchFigures:
        started = time.monotonic()
        summary = ingest_paths(list(files), dispatcher=self.dispatcher, chunk_size=16)
        drain(self.dispatcher)
        ids = [pid for _, pid in summary.ingested]
        for file, pid in summary.ingested:
            self.label_of[pid] = self.truth[str(Path(file))]
        version, _, _ = self.active()
        state = self._state(ids)
        auto = [pid for pid in ids if state[pid][0] == LabelSource.MODEL]
        right = [pid for pid in auto if state[pid][1] == self.label_of[pid]]
        suggested = [pid for pid in ids if state[pid][2] is not None]
        leaf_right = sum(state[pid][2] == self.label_of[pid] for pid in suggested)
        audit = None if self.audit is None else self.audit(version, auto, self.label_of)
        reviewed, corrections, revisions = self._review()
        with unit_of_work() as session:
            from catalog_ai.services.review import queue_count

            left = queue_count(session)
        figures = BatchFigures(
            batch=number,
            uploads=len(ids),
            model=version,
            auto_accepted=len(auto),
            auto_share=len(auto) / len(ids) if ids else 0.0,
            auto_precision=len(right) / len(auto) if auto else None,
            audit_estimate=audit,
            leaf_accuracy=leaf_right / len(suggested) if suggested else float("nan"),
            reviews=len(reviewed),
            reviews_per_100=100.0 * len(reviewed) / len(ids) if ids else 0.0,
            reviewed_confidences=[c for _, c in reviewed],
            queue_left=left,
            next_in_queue=self.next_confidence,
            corrections=corrections,
            revisions_added=revisions,
            duplicates=len(summary.duplicates),
        )
        self.reviews_since_retrain += len(reviewed)
        _, _, auto_on = self.active()
        if not auto_on:
            figures.calibrated = self.calibrate_from_reviews()
        if self.reviews_since_retrain >= self.config.retrain_every:
            self.reviews_since_retrain = 0
            figures.retrain = self.retrain()
        figures.seconds = round(time.monotonic() - started, 1)
        self.history.append(figures)
        return figures

    def _state(self, ids: Sequence[int]) -> dict[int, tuple[str | None, str | None, str | None]]:
        """``{product: (label source, its category path, its newest suggestion's path)}``."""
        with unit_of_work() as session:
            products = session.execute(
                select(Product.id, Product.label_source, Category.path)
                .outerjoin(Category, Category.id == Product.category_id)
                .where(Product.id.in_(ids))
            ).all()
            newest: dict[int, str] = {}
            for pid, path in session.execute(
                select(Suggestion.product_id, Suggestion.path)
                .where(Suggestion.product_id.in_(ids))
                .order_by(Suggestion.id)
            ):
                newest[pid] = path
        return {pid: (src, path, newest.get(pid)) for pid, src, path in products}

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


def local_promote(margin: float, dispatcher: Dispatcher) -> Promote:
    """The champion/challenger rule, implemented here: activate the challenger only when its
    leaf accuracy on ``compared`` beats the champion's by at least ``margin``."""
    from catalog_ai.services.models import activate_model
    from catalog_ai.services.versions import latest_revision, predictor_at

    def promote(session, *, champion: str, challenger: str, compared) -> Decision:
        if not compared:
            return Decision(False, "no human-labelled product that neither version trained on")
        files, truth = [f for f, _ in compared], [t for _, t in compared]
        accuracy = {}
        for version in (champion, challenger):
            from catalog_ai.db.queries import model_version_by_name

            row = model_version_by_name(session, version)
            predictor = predictor_at(session, version, latest_revision(session, row.id))
            leaves = [p.decision.leaf_path if p.decision else "" for p in predictor.predict(files)]
            accuracy[version] = float(np.mean([a == b for a, b in zip(leaves, truth, strict=True)]))
        gain = accuracy[challenger] - accuracy[champion]
        won = gain >= margin
        if won:
            activate_model(session, challenger, dispatcher=dispatcher)
        reason = (
            f"leaf accuracy {100 * accuracy[challenger]:.1f} % vs {100 * accuracy[champion]:.1f} % "
            f"on {len(compared)} reviewed products neither trained on: "
            + (f"wins by {100 * gain:+.1f} points" if won else f"{100 * gain:+.1f} points")
            + f" (margin {100 * margin:.1f})"
        )
        return Decision(won, reason, accuracy[champion], accuracy[challenger], len(compared))

    return promote
