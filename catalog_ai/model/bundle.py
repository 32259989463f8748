"""Model bundles: one self-contained directory per trained model.

```
bundle.json          manifest: format, version id, backbone and preprocessing, calibration,
                     thresholds, metrics, training settings, file names
model.safetensors    the network's weights (backbone and head); safetensors never runs code
taxonomy.json        the category tree the head was trained on (leaf columns, node rows)
prototypes.safetensors, prototypes.json   prototype memory (few-shot categories, open set)
report/              (optional) evaluation plots
```

Loading needs nothing but this directory and the installed backbone plugin named in the
manifest; no pickle is ever executed.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog_ai.backbones.spec import Preprocessing
from catalog_ai.errors import CatalogAIError, TaxonomyError
from catalog_ai.model.bundle_schema import (
    FORMAT,
    FORMAT_VERSION,
    BundleManifest,
    validate_manifest,
)
from catalog_ai.model.bundle_schema import json_kind as _json_kind
from catalog_ai.model.decision import Thresholds
from catalog_ai.model.prototypes import ARRAYS as PROTOTYPE_ARRAYS
from catalog_ai.model.prototypes import META as PROTOTYPE_META
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.taxonomy import Taxonomy

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "BundleError",
    "ModelBundle",
    "check_output_dir",
    "derive_bundle",
    "read_manifest",
    "write_bundle",
]

MANIFEST = "bundle.json"
WEIGHTS = "model.safetensors"
TAXONOMY = "taxonomy.json"


class BundleError(CatalogAIError):
    """A model bundle is missing, incomplete, of an unknown format, or does not fit the catalog."""


@dataclass
class ModelBundle:
    """What a bundle's manifest says, plus its taxonomy. Weights are loaded by the Predictor."""

    path: Path
    version: str
    backbone: str
    embedding_dim: int
    preprocessing: Preprocessing
    image_size: int
    eval_crop_pct: float
    temperature: float
    thresholds: Thresholds
    taxonomy: Taxonomy
    metrics: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)
    created_at: str = ""
    extra: dict = field(default_factory=dict)
    # For a version derived from another (see derive_bundle): {"version": parent version id,
    # "memory_revision": the parent's prototype-memory revision it starts from, "change": what}.
    parent: dict | None = None
    # Views averaged per photo at serving (catalog_ai.model.tta): "none", "flip", "crops", ...
    test_time_augmentation: str = "none"

    @property
    def weights_path(self) -> Path:
        return self.path / WEIGHTS

    def manifest(self) -> dict:
        return {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "version": self.version,
            "created_at": self.created_at,
            "backbone": {
                "name": self.backbone,
                "embedding_dim": self.embedding_dim,
                "preprocessing": self.preprocessing.to_dict(),
            },
            "image_size": self.image_size,
            "eval_crop_pct": self.eval_crop_pct,
            "calibration": {"method": "temperature", "temperature": self.temperature},
            "thresholds": self.thresholds.to_dict(),
            "taxonomy": {
                "file": TAXONOMY,
                "fingerprint": self.taxonomy.fingerprint(),
                "n_nodes": len(self.taxonomy),
                "n_leaves": len(self.taxonomy.leaf_ids),
            },
            "weights": WEIGHTS,
            "metrics": self.metrics,
            "training": self.training,
            **({"extra": self.extra} if self.extra else {}),
            **({"parent": self.parent} if self.parent else {}),
            "test_time_augmentation": self.test_time_augmentation,
        }

    def save_manifest(self) -> None:
        data = self.manifest()
        # Never write what load would refuse (a calibration gone wrong, a caller's typo).
        validate_manifest(data, self.path / MANIFEST, BundleError)
        _write_json_atomic(self.path / MANIFEST, data)

    @classmethod
    def load(cls, path: str | Path) -> ModelBundle:
        """The bundle at ``path``, every manifest field checked against
        :mod:`catalog_ai.model.bundle_schema` first: a damaged or tampered bundle is a one-line
        :class:`BundleError`, never a traceback or a model that silently decides nonsense."""
        path = Path(path)
        data = read_manifest(path)
        m = validate_manifest(data, path / MANIFEST, BundleError)
        taxonomy = _load_taxonomy(path / m.taxonomy.file)
        bundle = cls(
            path=path,
            version=m.version,
            backbone=m.backbone.name,
            embedding_dim=m.backbone.embedding_dim,
            preprocessing=_preprocessing(m),
            image_size=m.image_size,
            eval_crop_pct=m.eval_crop_pct,
            temperature=m.calibration.temperature,
            thresholds=Thresholds.from_dict(m.thresholds.model_dump()),
            taxonomy=taxonomy,
            metrics=m.metrics,
            training=m.training,
            created_at=m.created_at,
            extra=m.extra,
            parent=m.parent.model_dump() if m.parent is not None else None,
            test_time_augmentation=m.test_time_augmentation,
        )
        if taxonomy.fingerprint() != (m.taxonomy.fingerprint or taxonomy.fingerprint()):
            raise BundleError(
                f"{path}/{TAXONOMY} does not match the fingerprint in {MANIFEST}: the bundle was "
                "modified"
            )
        if not bundle.weights_path.is_file():
            raise BundleError(f"{path} has no {WEIGHTS}; the bundle is incomplete")
        return bundle


def _rgb(values: list[float]) -> tuple[float, float, float]:
    red, green, blue = values  # the schema checked there are three
    return red, green, blue


def _preprocessing(m: BundleManifest) -> Preprocessing:
    pre = m.backbone.preprocessing
    return Preprocessing(
        input_size=pre.input_size,
        mean=_rgb(pre.mean),
        std=_rgb(pre.std),
        interpolation=pre.interpolation,
        crop_pct=pre.crop_pct,
    )


def _load_taxonomy(file: Path) -> Taxonomy:
    try:
        data = json.loads(file.read_text("utf-8"))
        if not isinstance(data, dict):
            raise ValueError(f"a JSON {type(data).__name__}, not an object")
        return Taxonomy.from_dict(data)
    except (OSError, ValueError, KeyError, TypeError, AttributeError, TaxonomyError) as exc:
        raise BundleError(
            f"{file} cannot be read as the bundle's category tree ({exc}); re-copy the bundle"
        ) from exc


def read_manifest(path: Path) -> dict:
    """The parsed ``bundle.json`` of ``path``: a JSON object of this format (the fields are
    checked by :meth:`ModelBundle.load`)."""
    manifest = Path(path) / MANIFEST
    if not manifest.is_file():
        raise BundleError(
            f"{path} is not a model bundle (no {MANIFEST}); give the directory "
            "`catalog-ai train --out` wrote"
        )
    try:
        data = json.loads(manifest.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise BundleError(f"{manifest} cannot be read as JSON: {exc}; re-copy the bundle") from exc
    if not isinstance(data, dict):
        raise BundleError(
            f"{manifest} holds a JSON {_json_kind(data)}, not the JSON object of a bundle "
            "manifest; re-copy the bundle, or give the directory `catalog-ai train --out` wrote"
        )
    if data.get("format") != FORMAT:
        raise BundleError(
            f"{manifest}: format = {data.get('format')!r} is not a catalog_ai model bundle "
            f"manifest (expected {FORMAT!r}); give the directory `catalog-ai train --out` wrote"
        )
    version = data.get("format_version")
    if isinstance(version, int) and not isinstance(version, bool) and version > FORMAT_VERSION:
        raise BundleError(
            f"{path} uses bundle format {version}, newer than this catalog_ai "
            f"understands ({FORMAT_VERSION}); upgrade catalog_ai"
        )
    return data


def new_version_id(backbone: str, weights_file: Path) -> str:
    digest = hashlib.sha256(weights_file.read_bytes()).hexdigest()[:8]
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    # At most 64 characters (the database column): the backbone part is shortened if needed.
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in backbone)[:40]
    return f"{safe}-{stamp}-{digest}"


_OWN_ENTRIES = {MANIFEST, WEIGHTS, TAXONOMY, PROTOTYPE_ARRAYS, PROTOTYPE_META, "report"}
_OWN_ENTRIES |= {"checkpoints", "metrics.json"}


def check_output_dir(out_dir: Path) -> None:
    """Refuse to write a bundle into a directory holding anything else (never delete user files)."""
    out_dir = Path(out_dir)
    if out_dir.exists():
        if not out_dir.is_dir():
            raise BundleError(f"{out_dir} is a file; give a directory for the model bundle")
        foreign = sorted(
            p.name
            for p in out_dir.iterdir()
            if p.name not in _OWN_ENTRIES and not p.name.endswith(".tmp")
        )
        if foreign:
            raise BundleError(
                f"{out_dir} already holds other files ({', '.join(foreign[:3])}); "
                "give a new or empty directory for the model bundle"
            )


def write_bundle(
    out_dir: Path,
    *,
    state_dict: dict,
    backbone: str,
    embedding_dim: int,
    preprocessing: Preprocessing,
    image_size: int,
    eval_crop_pct: float,
    temperature: float,
    thresholds: Thresholds,
    taxonomy: Taxonomy,
    metrics: dict,
    training: dict,
    prototypes: PrototypeMemory | None = None,
) -> ModelBundle:
    """Write a bundle. The manifest is written last and atomically: a directory with a manifest is
    always complete, and an interrupted write leaves no manifest behind."""
    from safetensors.torch import save_file

    out_dir = Path(out_dir)
    check_output_dir(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / MANIFEST).unlink(missing_ok=True)
    tensors = {k: v.detach().cpu().contiguous() for k, v in state_dict.items()}
    tmp = out_dir / (WEIGHTS + ".tmp")
    save_file(tensors, str(tmp), metadata={"format": FORMAT})
    tmp.replace(out_dir / WEIGHTS)
    tmp = out_dir / (TAXONOMY + ".tmp")
    tmp.write_text(json.dumps(taxonomy.to_dict(), ensure_ascii=False), "utf-8")
    tmp.replace(out_dir / TAXONOMY)
    if prototypes is not None:
        prototypes.save(out_dir)
    else:
        for name in (PROTOTYPE_ARRAYS, PROTOTYPE_META):
            (out_dir / name).unlink(missing_ok=True)
    bundle = ModelBundle(
        path=out_dir,
        version=new_version_id(backbone, out_dir / WEIGHTS),
        backbone=backbone,
        embedding_dim=embedding_dim,
        preprocessing=preprocessing,
        image_size=image_size,
        eval_crop_pct=eval_crop_pct,
        temperature=temperature,
        thresholds=thresholds,
        taxonomy=taxonomy,
        metrics=metrics,
        training=training,
        created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
    )
    bundle.save_manifest()
    return bundle


def derive_bundle(
    parent: ModelBundle,
    *,
    change: str,
    out_dir: Path | None = None,
    temperature: float | None = None,
    thresholds: Thresholds | None = None,
    metrics: dict | None = None,
    prototypes: PrototypeMemory | None = None,
    memory_revision: int | None = None,
    image_size: int | None = None,
    test_time_augmentation: str | None = None,
) -> ModelBundle:
    """A new bundle (a new version id) derived from ``parent`` with the given changes; the
    parent's files are only read. Registered bundles are never rewritten: anything that changes
    what a model decides makes a new version, so every suggestion names what decided it.

    ``prototypes``: the new version's memory (default: the parent's files as they are);
    ``memory_revision``: the parent's memory revision that memory includes. The new bundle goes
    next to the parent (a directory named after the new version) unless ``out_dir`` is given; it
    is written under a temporary name and renamed, so a crash leaves no half bundle.
    ``image_size``, ``test_time_augmentation``: serve the same weights at another input size or
    with other test-time views (``catalog_ai.model.tta``)."""
    stamp = datetime.now(UTC).strftime("%Y%m%d-%H%M%S")
    digest = hashlib.sha256(f"{parent.version}\n{change}\n{time.time_ns()}".encode()).hexdigest()[
        :8
    ]
    safe = "".join(ch if ch.isalnum() or ch in "._-" else "_" for ch in parent.backbone)[:40]
    version = f"{safe}-{stamp}-{digest}"
    out_dir = Path(out_dir) if out_dir is not None else Path(parent.path).parent / version
    if out_dir.exists():
        raise BundleError(f"{out_dir} already exists; give a new directory for the derived model")
    tmp = out_dir.with_name(out_dir.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)  # a leftover of an interrupted derivation
    try:
        tmp.mkdir(parents=True)
    except OSError as exc:
        raise BundleError(
            f"cannot write the new model version into {out_dir.parent} ({exc.strerror or exc}); "
            "make that folder writable, or copy the model to a writable folder first"
        ) from exc
    try:
        # Copies, not links: the new version must stay intact whatever happens to the parent.
        shutil.copy2(parent.weights_path, tmp / WEIGHTS)
        shutil.copy2(Path(parent.path) / TAXONOMY, tmp / TAXONOMY)
        if prototypes is not None:
            prototypes.save(tmp)
        else:
            for name in (PROTOTYPE_ARRAYS, PROTOTYPE_META):
                if (Path(parent.path) / name).is_file():
                    shutil.copy2(Path(parent.path) / name, tmp / name)
        bundle = ModelBundle(
            path=out_dir,
            version=version,
            backbone=parent.backbone,
            embedding_dim=parent.embedding_dim,
            preprocessing=parent.preprocessing,
            image_size=image_size or parent.image_size,
            eval_crop_pct=parent.eval_crop_pct,
            temperature=parent.temperature if temperature is None else temperature,
            thresholds=parent.thresholds if thresholds is None else thresholds,
            taxonomy=parent.taxonomy,
            metrics=dict(parent.metrics if metrics is None else metrics),
            training=dict(parent.training),
            created_at=datetime.now(UTC).isoformat(timespec="microseconds"),
            extra=dict(parent.extra),
            parent={
                "version": parent.version,
                "memory_revision": memory_revision,
                "change": change,
            },
            test_time_augmentation=test_time_augmentation or parent.test_time_augmentation,
        )
        validate_manifest(bundle.manifest(), tmp / MANIFEST, BundleError)  # e.g. a bad size
        _write_json_atomic(tmp / MANIFEST, bundle.manifest())
        tmp.rename(out_dir)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise BundleError(
            f"cannot write the new model version to {out_dir}: {exc.strerror or exc}"
        ) from exc
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return bundle


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, ensure_ascii=False), "utf-8")
    tmp.replace(path)
