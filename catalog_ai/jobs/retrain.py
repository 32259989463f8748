"""Opt-in retraining by the beat: once ``CATALOG_AI_RETRAIN_AFTER_REVIEWS`` reviews (audits
included) arrived since the active version was made (or since the last retraining, whatever
it decided), train a new version from the catalog and activate it only if it is better.

It is ``train --from-catalog --promote-if-better`` with the defaults: the most recent products
people labelled since the active version was made are held out of the training to compare on
(:func:`catalog_ai.services.promotion.holdout_for_training`), categories with fewer than 5
photos go to few-shot prototypes, the new bundle is written under ``CATALOG_AI_MODEL_DIR``
(``retrain-<UTC time>``), registered, and activated only by the promotion rule; otherwise it
stays registered and inactive with its reason (``catalog-ai models list``). The backbone is the
active version's. A lock file in the model directory keeps two beats (or two hosts sharing it)
from training at once; one older than 12 hours is taken to be left by a dead process.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai.db import Review, unit_of_work
from catalog_ai.db.models.audit import PromotionRecord
from catalog_ai.services.model_compare import cutoff
from catalog_ai.services.models import active_model
from catalog_ai.settings import get_settings

if TYPE_CHECKING:
    from catalog_ai.dispatch import Dispatcher
    from catalog_ai.services.promotion import PromotionDecision
    from catalog_ai.training.fit import TrainConfig

__all__ = ["LOCK_NAME", "retrain_and_promote", "retrain_if_due", "reviews_since_training"]

log = logging.getLogger(__name__)

LOCK_NAME = "retrain.lock"
_STALE_S = 12 * 3600


def reviews_since_training(session: Session) -> int:
    """Reviews (audit verdicts included) recorded since the active version was made, or since
    the last promote-if-better decision if that is later; 0 with no active version."""
    active = active_model(session)
    if active is None:
        return 0
    since = cutoff(active)
    last = session.scalar(select(func.max(PromotionRecord.created_at)))
    if last is not None:
        last = last if last.tzinfo else last.replace(tzinfo=UTC)
        since = max(since, last)
    return session.scalar(select(func.count()).where(Review.created_at >= since)) or 0


@contextmanager
def _lock(folder: Path) -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / LOCK_NAME
    try:
        if path.exists() and time.time() - path.stat().st_mtime > _STALE_S:
            path.unlink(missing_ok=True)
        fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        yield False
        return
    os.write(fd, str(os.getpid()).encode())
    os.close(fd)
    try:
        yield True
    finally:
        path.unlink(missing_ok=True)


def retrain_and_promote(
    *,
    dispatcher: Dispatcher | None,
    out_dir: Path,
    margin: float = 0.01,
    holdout_recent: int = 200,
    config: TrainConfig | None = None,
    min_photos_per_category: int = 5,
) -> PromotionDecision:
    """Train from the catalog (people's labels only), holding the recent products out, then
    register the new version and promote it only if it beats the active one."""
    from catalog_ai.photos.store import MediaStore
    from catalog_ai.services.fewshot import add_examples
    from catalog_ai.services.models import register_model
    from catalog_ai.services.promotion import holdout_for_training, promote_if_better
    from catalog_ai.taxonomy import Taxonomy
    from catalog_ai.training.fit import TrainConfig, fit
    from catalog_ai.training.sources import examples_from_catalog, split_rare_categories

    with unit_of_work() as session:
        held = holdout_for_training(session, holdout_recent)
        active = active_model(session)
        backbone = active.backbone if active is not None else None
    taxonomy, examples, description = examples_from_catalog()
    media = MediaStore(get_settings().media_dir)
    files = {str(media.path(p)) for _, photos in held for p in photos}
    examples = [e for e in examples if str(e.file) not in files]
    examples, rare = split_rare_categories(examples, min_photos_per_category)
    if rare:
        taxonomy = Taxonomy.from_paths(sorted({e.label for e in examples}))
    if config is None:
        config = TrainConfig.preset("finetune")
        if backbone:
            config = dataclasses.replace(config, backbone=backbone)
    description += f"; {len(held)} recent products held out to compare on"
    fit(config, taxonomy=taxonomy, examples=examples, out_dir=out_dir, data_description=description)
    if rare:
        add_examples(out_dir, [(e.file, tuple(e.label.split(" > "))) for e in rare])
    with unit_of_work() as session:
        row = register_model(session, out_dir, add_categories=True)
        return promote_if_better(
            session,
            row.version,
            margin=margin,
            dispatcher=dispatcher,
            held_out=[pid for pid, _ in held],
            n_recent=len(held) or 500,
        )


def retrain_if_due(
    *,
    dispatcher: Dispatcher | None,
    threshold: int | None = None,
    config: TrainConfig | None = None,
) -> PromotionDecision | None:
    """Retrain and promote-if-better when ``threshold`` (default
    ``CATALOG_AI_RETRAIN_AFTER_REVIEWS``; none: never) reviews arrived since the last training;
    None when not due, or when another retraining holds the lock."""
    settings = get_settings()
    threshold = threshold if threshold is not None else settings.retrain_after_reviews
    if not threshold:
        return None
    with unit_of_work() as session:
        arrived = reviews_since_training(session)
    if arrived < threshold:
        return None
    with _lock(settings.model_dir) as mine:
        if not mine:
            log.info("a retraining is already running (%s); not starting another", LOCK_NAME)
            return None
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = settings.model_dir / f"retrain-{stamp}"
        log.info("%d reviews since the last training: retraining into %s", arrived, out_dir)
        decision = retrain_and_promote(dispatcher=dispatcher, out_dir=out_dir, config=config)
        log.info("retrained %s: %s", decision.candidate, decision.reason)
        return decision
