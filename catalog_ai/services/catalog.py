"""Catalog import: category trees into the database, labelled photo folders into products."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from catalog_ai import images
from catalog_ai.db import (
    Category,
    LabelSource,
    ProductImage,
    ProductStatus,
    TaxonomyVersion,
)
from catalog_ai.errors import ImageError, TaxonomyError
from catalog_ai.media import MediaStore, content_hash
from catalog_ai.services.ingest import attach_photo, insert_product
from catalog_ai.taxonomy import SEPARATOR, Node, Taxonomy, check_node, format_path

__all__ = [
    "TaxonomySync",
    "ImportSummary",
    "sync_taxonomy",
    "catalog_taxonomy",
    "import_labelled_files",
]


@dataclass
class TaxonomySync:
    added: int
    existing: int
    version: int | None  # the new taxonomy version, None when nothing was added


@dataclass
class ImportSummary:
    imported: int = 0
    duplicates: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (file, reason)

    def merge(self, other: ImportSummary) -> None:
        self.imported += other.imported
        self.duplicates += other.duplicates
        self.failed.extend(other.failed)


def sync_taxonomy(session: Session, taxonomy: Taxonomy, *, source: str, note: str = "") -> TaxonomySync:
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
                    source=where, line=line,
                )
            new_nodes.append((node, external_id))
        elif external_id and current.external_id and current.external_id != external_id:
            raise TaxonomyError(
                f"category {node.text!r} already exists with id {current.external_id!r}, "
                f"the new tree gives it id {external_id!r}; fix the file or rename the category",
                source=where, line=line,
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
    # Taxonomy order puts every parent before its children, so parents are always known here.
    for node, external_id in new_nodes:
        parent = by_path[format_path(node.path[:-1])] if node.depth > 1 else None
        category = Category(
            path=node.text,
            name=node.name,
            parent=parent,
            depth=node.depth,
            external_id=external_id,
            source=_source_kind(source),
            taxonomy_version=version.id,
        )
        session.add(category)
        by_path[node.text] = category
    session.flush()
    version.fingerprint = catalog_taxonomy(session).fingerprint()
    return TaxonomySync(added=len(new_nodes), existing=len(taxonomy) - len(new_nodes), version=version.id)


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

    A file whose bytes are already in the catalog is counted as a duplicate and not stored again,
    so re-running an import adds nothing. An unreadable file is reported with its reason and the
    others go on. Categories must exist already (:func:`sync_taxonomy`).
    """
    if not LabelSource(label_source).is_human:
        # Imported labels are never re-classified: a model's guess must not pass as one.
        raise ValueError(f"import_labelled_files stores labels a person gave, not {label_source!r}")
    summary = ImportSummary()
    categories = _categories_by_path(session, {format_path(p) for _, p in files})
    seen: set[str] = set()
    pending: list[tuple[Path, tuple[str, ...], bytes, str]] = []
    for file, path in files:
        try:
            data = images.read_bytes(file, max_bytes=max_bytes)
        except ImageError as exc:
            summary.failed.append((str(file), exc.reason))
            _tick(on_file, file)
            continue
        digest = content_hash(data)
        if digest in seen:
            summary.duplicates += 1
            _tick(on_file, file)
            continue
        seen.add(digest)
        pending.append((file, path, data, digest))

    known = _known_hashes(session, [digest for *_, digest in pending])
    for file, path, data, digest in pending:
        if digest in known:
            summary.duplicates += 1
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
                    category_id=categories[format_path(path)].id,
                    label_source=label_source,
                )
                if pid is not None and attach_photo(session, pid, stored, info) is None:
                    summary.imported += 1
                else:
                    summary.duplicates += 1
        _tick(on_file, file)
    session.flush()
    return summary


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


def _known_hashes(session: Session, digests: list[str]) -> set[str]:
    if not digests:
        return set()
    rows = session.scalars(select(ProductImage.content_hash).where(ProductImage.content_hash.in_(digests)))
    return set(rows)
