"""Catalog import: category trees into the database, labelled photo folders into products."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session

from catalog_ai.db import (
    Category,
    LabelSource,
    Product,
    ProductImage,
    ProductStatus,
    TaxonomyVersion,
)
from catalog_ai.errors import ImageError, TaxonomyError
from catalog_ai.photos import decode as images
from catalog_ai.photos.store import MediaStore, content_hash
from catalog_ai.services.ingest import attach_photo, insert_product
from catalog_ai.taxonomy import SEPARATOR, Node, Taxonomy, check_node, format_path
from catalog_ai.taxonomy.tree import fingerprint_of

__all__ = [
    "ImportSummary",
    "LabelConflict",
    "TaxonomySync",
    "catalog_taxonomy",
    "import_labelled_files",
    "sync_taxonomy",
]


@dataclass
class TaxonomySync:
    added: int
    existing: int
    version: int | None  # the new taxonomy version, None when nothing was added


@dataclass(frozen=True)
class LabelConflict:
    """A photo a person had already labelled otherwise: their label was kept, this is the other."""

    file: str
    product_id: int
    kept: str | None  # the category the person gave; None: a reviewer rejected the product
    given: str  # the category the import gives the same photo

    def describe(self) -> str:
        kept = "rejected by a reviewer" if self.kept is None else f"labelled {self.kept!r}"
        return (
            f"{self.file}: the same photo is product {self.product_id}, {kept} by a person; "
            f"kept that, not {self.given!r} (correct it in review if the import is right)"
        )


@dataclass
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    # Photos already in the catalog with a model's label or none (pending, failed, suggested):
    # the import is a person's decision, so they now carry its category.
    relabelled: int = 0
    # Duplicates whose person-given label differs from the import's (counted in duplicates too).
    conflicts: list[LabelConflict] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def merge(self, other: ImportSummary) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.relabelled += other.relabelled
        self.conflicts.extend(other.conflicts)
        self.failed.extend(other.failed)


def sync_taxonomy(
    session: Session, taxonomy: Taxonomy, *, source: str, note: str = ""
) -> TaxonomySync:
    """Add the categories of ``taxonomy`` that the catalog does not have yet.

    Existing categories are matched by path and left as they are. A node whose id is not its own
    path text (Google or CSV ids) keeps that id as ``external_id``; the same path arriving with a
    different external id, or an external id that another category already holds, is refused
    rather than silently relabelled (it used to be a raw IntegrityError at flush).

    Every node is checked before anything is added, so a refused tree writes nothing; errors name
    the file and line the node was read from (``Taxonomy.source`` and ``Taxonomy.line_of``).
    """
    where = taxonomy.source or source
    by_path = {c.path: c for c in session.scalars(select(Category))}
    by_external = {c.external_id: c for c in by_path.values() if c.external_id is not None}
    new_nodes = []
    for node in taxonomy:
        external_id = None if node.id == node.text else node.id
        line = taxonomy.line_of(node.id)
        current = by_path.get(node.text)
        if current is None:
            check_node(node, source=where, line=line)  # parsers did; a hand-built tree may not
            holder = by_external.get(external_id) if external_id is not None else None
            if holder is not None:
                raise TaxonomyError(
                    f"id {external_id!r} of the new category {node.text!r} is already the id of "
                    f"{holder.path!r} in the catalog; give one of them another id",
                    source=where,
                    line=line,
                )
            new_nodes.append((node, external_id))
        elif external_id and current.external_id and current.external_id != external_id:
            raise TaxonomyError(
                f"category {node.text!r} already exists with id {current.external_id!r}, "
                f"the new tree gives it id {external_id!r}; fix the file or rename the category",
                source=where,
                line=line,
            )
    if not new_nodes:
        return TaxonomySync(added=0, existing=len(taxonomy), version=None)

    latest = session.scalar(select(func.max(TaxonomyVersion.id))) or 0
    version = TaxonomyVersion(
        id=latest + 1,
        source=source[:255],
        note=note,
        n_categories=len(by_path) + len(new_nodes),
        fingerprint="",
    )
    session.add(version)
    session.flush()
    # One INSERT per depth (parents first) instead of an ORM object per category: the unit of
    # work spent 3.5 s on a 10,000-category Shopify tree, these statements a few tenths.
    ids = {path: category.id for path, category in by_path.items()}
    kind = _source_kind(source)
    # (parent path, row) per depth; the parent's id is known once its depth is written.
    by_depth: dict[int, list[tuple[str | None, dict[str, object]]]] = {}
    for node, external_id in new_nodes:
        # node.path was checked above (check_node), so a plain join gives format_path's text
        # without checking every name again (0.3 s on 10,000 categories).
        parent_path = SEPARATOR.join(node.path[:-1]) if node.depth > 1 else None
        by_depth.setdefault(node.depth, []).append(
            (
                parent_path,
                {
                    "path": node.text,
                    "name": node.name,
                    "depth": node.depth,
                    "external_id": external_id,
                    "source": kind,
                    "taxonomy_version": version.id,
                },
            )
        )
    for depth in sorted(by_depth):
        rows = [
            {**row, "parent_id": None if parent is None else ids[parent]}
            for parent, row in by_depth[depth]
        ]
        session.execute(insert(Category), rows)
        ids.update(
            session.execute(
                select(Category.path, Category.id).where(
                    Category.taxonomy_version == version.id, Category.depth == depth
                )
            ).all()
        )
    session.flush()
    # catalog_taxonomy(session).fingerprint(), from the paths in hand instead of reading the
    # whole tree back (0.2 s of a 10,000-category import).
    every_path = [*by_path, *(node.text for node, _ in new_nodes)]
    version.fingerprint = fingerprint_of((tuple(p.split(SEPARATOR)), p) for p in every_path)
    return TaxonomySync(
        added=len(new_nodes), existing=len(taxonomy) - len(new_nodes), version=version.id
    )


def _source_kind(source: str) -> str:
    kind = source.split(":", 1)[0]
    return kind if kind in {"import", "folder", "fewshot", "review"} else "import"


def catalog_taxonomy(session: Session) -> Taxonomy:
    """The catalog's whole category tree as a :class:`Taxonomy` (node id = path text).

    Built from the stored rows as they are, not re-parsed: a catalog holding names stored before
    the taxonomy contract (control characters, repeated spaces) still loads, and its categories
    are not renamed behind the store's back.
    """
    paths = session.scalars(select(Category.path).order_by(Category.depth, Category.id)).all()
    nodes = []
    for text in paths:  # by depth, so every parent comes before its children
        path = tuple(text.split(SEPARATOR))
        parent = SEPARATOR.join(path[:-1]) if len(path) > 1 else None
        nodes.append(Node(text, path[-1], path, parent, len(path)))
    return Taxonomy(nodes)


def import_labelled_files(
    session: Session,
    files: Sequence[tuple[Path, tuple[str, ...]]],
    *,
    media: MediaStore,
    max_bytes: int | None = None,
    max_pixels: int | None = None,
    on_file: Callable[[Path], None] | None = None,
    label_source: LabelSource = LabelSource.IMPORT,
) -> ImportSummary:
    """Store labelled photos as accepted products of their categories.

    A file whose bytes are already in the catalog is not stored again, so re-running an import
    adds nothing. If that product's label was not a person's (a model's guess, or none yet), the
    import's label is: the product takes its category and ``label_source`` (``relabelled``). A
    person's label is kept (a duplicate); one that differs from the import's is reported in
    ``conflicts``. An unreadable file is reported with its reason and the others go on.
    Categories must exist already (:func:`sync_taxonomy`).
    """
    if not LabelSource(label_source).is_human:
        # Imported labels are never re-classified: a model's guess must not pass as one.
        raise ValueError(f"import_labelled_files stores labels a person gave, not {label_source!r}")
    summary = ImportSummary()
    categories = _categories_by_path(session, {format_path(p) for _, p in files})
    seen: set[str] = set()
    pending: list[tuple[Path, tuple[str, ...], bytes, str]] = []
    repeats: list[tuple[Path, tuple[str, ...], str]] = []  # same bytes as an earlier file here
    for file, path in files:
        try:
            data = images.read_bytes(file, max_bytes=max_bytes)
        except ImageError as exc:
            summary.failed.append((str(file), exc.reason))
            _tick(on_file, file)
            continue
        digest = content_hash(data)
        if digest in seen:
            repeats.append((file, path, digest))  # settled once the first one is stored
            continue
        seen.add(digest)
        pending.append((file, path, data, digest))

    known = _products_by_hash(session, [digest for *_, digest in pending])
    for file, path, data, digest in pending:
        category = categories[format_path(path)]
        if digest in known:
            _settle_existing(known[digest], file, category, label_source, summary)
        else:
            try:
                info = images.probe(data, source=str(file), max_pixels=max_pixels)
            except ImageError as exc:
                summary.failed.append((str(file), exc.reason))
            else:
                stored = media.put(data, image_format=info.format, digest=digest)
                # Row by row with ON CONFLICT: a photo a concurrent writer (another import, an
                # ingest) stored first is a duplicate here, not an IntegrityError for the chunk.
                pid = insert_product(
                    session,
                    title=file.stem[:512],
                    status=ProductStatus.ACCEPTED,
                    category_id=category.id,
                    label_source=label_source,
                )
                winner = None if pid is None else attach_photo(session, pid, stored, info)
                if pid is not None and winner is None:
                    summary.imported += 1
                elif winner is not None:
                    product = session.get(Product, winner, with_for_update=True)
                    assert product is not None  # it holds the photo this very statement met
                    _settle_existing(product, file, category, label_source, summary)
                else:
                    summary.duplicates += 1
        _tick(on_file, file)
    session.flush()
    if repeats:
        stored_now = _products_by_hash(session, sorted({digest for *_, digest in repeats}))
        for file, path, digest in repeats:
            product = stored_now.get(digest)
            if product is None:  # the first file with these bytes failed: reported there
                summary.duplicates += 1
            else:
                category = categories[format_path(path)]
                _settle_existing(product, file, category, label_source, summary)
            _tick(on_file, file)
        session.flush()
    return summary


def _settle_existing(
    product: Product,
    file: Path,
    category: Category,
    label_source: LabelSource,
    summary: ImportSummary,
) -> None:
    """A labelled file whose photo is already ``product``: a person's label decides."""
    if not product.labelled_by_person:
        # A model's guess, or no label yet (pending, processing, failed, suggested): the import
        # is a person's decision, and no model may re-classify it from now on.
        product.category_id = category.id
        product.label_source = label_source
        product.status = ProductStatus.ACCEPTED
        product.error = None
        summary.relabelled += 1
        return
    # People's decisions stay decided; a disagreement between two of them is shown, not settled.
    summary.duplicates += 1
    if product.category_id != category.id:
        kept = None if product.category is None else product.category.path
        summary.conflicts.append(LabelConflict(str(file), product.id, kept, category.path))


def _tick(on_file: Callable[[Path], None] | None, file: Path) -> None:
    if on_file is not None:
        on_file(file)


def _categories_by_path(session: Session, paths: Iterable[str]) -> dict[str, Category]:
    wanted = set(paths)
    found = {c.path: c for c in session.scalars(select(Category).where(Category.path.in_(wanted)))}
    missing = sorted(wanted - found.keys())
    if missing:
        raise TaxonomyError(
            f"{len(missing)} categories are not in the catalog (first: {missing[0]!r}); "
            "import the category tree first"
        )
    return found


def _products_by_hash(session: Session, digests: list[str]) -> dict[str, Product]:
    """The products holding these photo hashes, locked until the commit (a worker that is
    classifying one meanwhile then sees the label a person gave it)."""
    if not digests:
        return {}
    rows = session.execute(
        select(ProductImage.content_hash, Product)
        .join(Product, Product.id == ProductImage.product_id)
        .where(ProductImage.content_hash.in_(digests))
        .order_by(Product.id)
        .with_for_update(of=Product)
    )
    return {digest: product for digest, product in rows}
