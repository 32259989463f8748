"""Catalog embedding on activation, the search index it feeds, and near-duplicate flags on upload
(embedded set-up: SQLite, tasks in-process)."""

from __future__ import annotations

import numpy as np
from helpers import make_tree, random_bundle
from PIL import Image
from sqlalchemy import func, select

from catalog_ai.db import Embedding, Product, ProductImage, migrate, unit_of_work
from catalog_ai.jobs.folder_import import import_folder
from catalog_ai.jobs.ingest import ingest_paths
from catalog_ai.services.embed import embedding_progress
from catalog_ai.services.models import activate_model, register_model
from catalog_ai.services.search_index import index_status
from catalog_ai.settings import get_settings


def test_activation_embeds_the_catalog_and_uploads_get_duplicate_flags(
    catalog_home, tmp_path, runner
):
    migrate.upgrade()
    tree = make_tree(tmp_path / "catalog", per_class=4)
    import_folder(tree)
    bundle = random_bundle(get_settings().model_dir / "m")
    with unit_of_work() as s:
        register_model(s, bundle.path)
        activate_model(s, bundle.version, dispatcher=runner)  # + catalog embedding
    runner.drain()
    with unit_of_work() as s:
        progress = embedding_progress(s, bundle.version)
        assert progress.images == 16 and progress.embedded == 16 and progress.done
        status = index_status(s, bundle.version)
        assert status.n_indexed == 16 and status.up_to_date

    # A re-shoot of a catalog photo (same scene, new JPEG encoding) is flagged with its twin; a
    # photo unlike anything in the catalog is not.
    original = sorted((tree / "Veg" / "Carrot").glob("*.png"))[0]
    reshoot = tmp_path / "uploads" / "carrot-again.jpg"
    reshoot.parent.mkdir()
    Image.open(original).convert("RGB").save(reshoot, "JPEG", quality=92)
    stripes = np.zeros((40, 40, 3), dtype=np.uint8)
    stripes[::4] = 255  # white lines on black: nothing like the noisy colour patches
    other = tmp_path / "uploads" / "stripes.png"
    Image.fromarray(stripes).save(other)
    summary = ingest_paths([reshoot, other], dispatcher=runner)
    runner.drain()
    assert len(summary.created) == 2
    with unit_of_work() as s:
        twin = s.scalar(
            select(Product.id).join(ProductImage).where(ProductImage.stored_path.contains(
                __import__("hashlib").sha256(original.read_bytes()).hexdigest()))
        )
        flagged = dict(s.execute(select(Product.title, Product.duplicate_of_id)
                                 .where(Product.id.in_(summary.created))).all())
        assert flagged["carrot-again"] == twin
        assert flagged["stripes"] is None
        assert s.scalar(select(func.count()).select_from(Embedding)) == 18
