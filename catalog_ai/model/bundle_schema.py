"""The typed schema of a model bundle's manifest (``bundle.json``) and prototype file
(``prototypes.json``), with the ranges a working model needs.

A bundle is data that may have been copied, edited or damaged; nothing in it is trusted until it
has passed this schema. A value outside its range would otherwise surface much later as a raw
``ZeroDivisionError`` (``eval_crop_pct: 0``), an out-of-memory kill (``image_size: 20000``) or,
worse, silently wrong decisions (a temperature of 0 or NaN gives ``confidence nan``, a negative
one reverses the ranking, ``auto_accept: 0`` auto-accepts everything).

:func:`validate_manifest` and :func:`validate_prototype_meta` turn the first problem pydantic
finds into one line naming the file, the field, the value, the rule and the fix.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

__all__ = [
    "FORMAT",
    "FORMAT_VERSION",
    "IMAGE_SIZE_RANGE",
    "MAX_SQUARE",
    "MIN_FORMAT_VERSION",
    "TEMPERATURE_RANGE",
    "BundleManifest",
    "PrototypeMeta",
    "describe_error",
    "json_kind",
    "validate_manifest",
    "validate_prototype_meta",
]

FORMAT = "catalog_ai.model_bundle"
FORMAT_VERSION = 1
MIN_FORMAT_VERSION = 1
# Training at more than 1024 px is not something this CPU-first system does; 20000 was measured
# to be OOM-killed at 21 GB while allocating the first batch.
IMAGE_SIZE_RANGE = (16, 1024)
# The photo is resized to image_size / eval_crop_pct before the centre crop: bounded as well, so
# that a small crop fraction cannot blow the square up instead.
MAX_SQUARE = 2048
# fit_temperature clamps to [0.05, 20]; a little room either side for hand-calibrated models.
TEMPERATURE_RANGE = (0.001, 1000.0)
MAX_EMBEDDING_DIM = 65536
MAX_VERSION_LENGTH = 64  # the model_versions.version column

_MANIFEST_FIX = "restore bundle.json from the original bundle, or retrain with `catalog-ai train`"
# Longest prefix wins: the fix that fits the field best.
_FIXES: dict[tuple[str, ...], str] = {
    ("format_version",): "give a bundle written by `catalog-ai train`, or upgrade catalog_ai if "
    "the bundle comes from a newer one",
    ("calibration",): "re-run `catalog-ai calibrate` on this model, or restore bundle.json "
    "from the original bundle",
    ("thresholds",): "re-run `catalog-ai calibrate` on this model, or restore the thresholds "
    "from the original bundle.json",
    ("image_size",): "these must be the values the model was trained with: restore bundle.json "
    "from the original bundle",
    ("eval_crop_pct",): "these must be the values the model was trained with: restore "
    "bundle.json from the original bundle",
    ("backbone", "preprocessing"): "these must be the backbone's preprocessing values: restore "
    "bundle.json from the original bundle",
}
_PROTOTYPE_FIX = (
    "restore prototypes.json from the original bundle, or re-add the few-shot "
    "categories (`catalog-ai fewshot add`)"
)


def _in_range(
    lo: float | None = None, hi: float | None = None, *, lo_open: bool = False
) -> AfterValidator:
    """A finite float in a range, with one message saying the whole rule (pydantic's own range
    messages would call NaN "not less than 1000"); the metadata of ``Annotated[float, ...]``."""
    left = "" if lo is None else f"{lo:g} < " if lo_open else f"{lo:g} <= "
    right = "" if hi is None else f" <= {hi:g}"
    rule = f"must be a finite number{f' with {left}value{right}' if left or right else ''}"

    def check(v: float) -> float:
        if (
            not math.isfinite(v)
            or (lo is not None and (v <= lo if lo_open else v < lo))
            or (hi is not None and v > hi)
        ):
            raise ValueError(rule)
        return v

    return AfterValidator(check)


Finite = Annotated[float, _in_range()]
# (0, 1]: a threshold of 0 would accept every photo (auto-accept) or never stop the walk.
Probability = Annotated[float, _in_range(0.0, 1.0, lo_open=True)]
PositiveInt = Annotated[int, Field(ge=1)]
Name = Annotated[str, Field(min_length=1, max_length=255)]


def _precision_key(v: str) -> str:
    try:
        p = float(v)
    except ValueError:
        raise ValueError("must be a precision written as a number, e.g. '0.98'") from None
    if not (math.isfinite(p) and 0.0 < p < 1.0):
        raise ValueError("must be a precision in (0, 1), e.g. '0.98'")
    return v


PrecisionKey = Annotated[str, AfterValidator(_precision_key)]


def _auto_accept(v: float) -> float:
    # Above 1 is the documented "off" (no calibrated probability reaches it); 0 or less would
    # auto-accept every photo.
    if not math.isfinite(v) or v <= 0.0:
        raise ValueError("must be a finite number > 0 (in (0, 1] to auto-accept, above 1 for off)")
    return v


AutoAccept = Annotated[float, AfterValidator(_auto_accept)]


class _Model(BaseModel):
    # strict: a manifest is written by this package, so "32" for 32 or true for 1 is damage, not
    # a convenience. Unknown keys are ignored so that a bundle stays readable across additions.
    model_config = ConfigDict(strict=True, extra="ignore", frozen=True)


class PreprocessingSchema(_Model):
    input_size: Annotated[int, Field(ge=16, le=2048)]
    mean: Annotated[list[Finite], Field(min_length=3, max_length=3)]
    std: Annotated[
        list[Annotated[float, _in_range(0.0, lo_open=True)]], Field(min_length=3, max_length=3)
    ]
    interpolation: Literal["nearest", "bilinear", "bicubic"] = "bilinear"
    crop_pct: Probability = 1.0


class BackboneSchema(_Model):
    name: Annotated[str, Field(min_length=1, max_length=200)]
    embedding_dim: Annotated[int, Field(ge=1, le=MAX_EMBEDDING_DIM)]
    preprocessing: PreprocessingSchema


class CalibrationSchema(_Model):
    method: Literal["temperature"] = "temperature"
    temperature: Annotated[float, _in_range(*TEMPERATURE_RANGE)]


class ThresholdsSchema(_Model):
    decision: Probability = 0.5
    auto_accept: AutoAccept = 1.01
    auto_accept_by_precision: dict[PrecisionKey, AutoAccept] = Field(default_factory=dict)
    auto_accept_target: PrecisionKey = "0.98"
    calibrated_on: str = ""


def _plain_file_name(v: str) -> str:
    # The manifest names a file inside the bundle; a path would let a tampered manifest read
    # any file on the machine.
    if not v or v in (".", "..") or "/" in v or "\\" in v or "\0" in v:
        raise ValueError("must be a plain file name inside the bundle directory")
    return v


class TaxonomyRefSchema(_Model):
    file: Annotated[str, AfterValidator(_plain_file_name)] = "taxonomy.json"
    fingerprint: str | None = None
    n_nodes: PositiveInt | None = None
    n_leaves: PositiveInt | None = None


class ParentSchema(_Model):
    """Where a derived version comes from (see ``bundle.derive_bundle``)."""

    version: Annotated[str, Field(min_length=1, max_length=MAX_VERSION_LENGTH)]
    memory_revision: Annotated[int, Field(ge=0)] | None = None
    change: Annotated[str, Field(max_length=4096)] = ""


class BundleManifest(_Model):
    format: Literal["catalog_ai.model_bundle"]
    format_version: Annotated[int, Field(ge=MIN_FORMAT_VERSION)]
    version: Annotated[str, Field(min_length=1, max_length=MAX_VERSION_LENGTH)]
    # The version this one was derived from (recalibration, new thresholds, few-shot additions).
    parent: ParentSchema | None = None
    created_at: str = ""
    backbone: BackboneSchema
    image_size: Annotated[int, Field(ge=IMAGE_SIZE_RANGE[0], le=IMAGE_SIZE_RANGE[1])]
    eval_crop_pct: Probability = 1.0
    calibration: CalibrationSchema
    thresholds: ThresholdsSchema = Field(default_factory=ThresholdsSchema)
    taxonomy: TaxonomyRefSchema
    weights: Literal["model.safetensors"] = "model.safetensors"
    metrics: dict[str, Any] = Field(default_factory=dict)
    training: dict[str, Any] = Field(default_factory=dict)
    extra: dict[str, Any] = Field(default_factory=dict)
    # Test-time views averaged per photo (catalog_ai.model.tta.TTA_MODES); absent: "none".
    test_time_augmentation: Literal["none", "flip", "crops", "flip_crops"] = "none"

    @field_validator("format_version")
    @classmethod
    def _known_version(cls, v: int) -> int:
        if v > FORMAT_VERSION:
            raise ValueError(
                f"is newer than the newest this catalog_ai understands ({FORMAT_VERSION})"
            )
        return v

    @field_validator("eval_crop_pct")
    @classmethod
    def _square_bounded(cls, v: float, info: ValidationInfo) -> float:
        image_size = info.data.get("image_size")
        if image_size is None:  # image_size itself failed: that error is reported
            return v
        # The side model.preprocess.eval_square_size resizes to (floored, as timm does).
        side = max(image_size, math.floor(image_size / v))
        if side > MAX_SQUARE:
            raise ValueError(
                f"resizes photos to {side} px before the centre crop of image_size={image_size}, "
                f"more than {MAX_SQUARE}; it must be at least {image_size / MAX_SQUARE:.3g}"
            )
        return v


class FusionSchema(_Model):
    scale: Finite = 20.0
    bias: Finite = -8.0
    open_set_cosine: Annotated[float, _in_range(-1.0, 1.0)] = -1.0
    fitted_on: str = ""
    nearest_gate: bool = True


class PrototypeMeta(_Model):
    version: Literal[1] = 1
    paths: list[Annotated[str, Field(min_length=1)]]
    sources: list[Literal["train", "fewshot", "review"]]
    fusion: FusionSchema = Field(default_factory=FusionSchema)
    example_hashes: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source_per_path(self) -> PrototypeMeta:
        if len(self.sources) != len(self.paths):
            raise ValueError(
                f"lists {len(self.paths)} paths but {len(self.sources)} sources; "
                "give one source per path"
            )
        if len(set(self.paths)) != len(self.paths):
            raise ValueError("lists a category path twice")
        return self


# --------------------------------------------------------------------------- errors


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _fix_for(loc: tuple[str, ...], fixes: Mapping[tuple[str, ...], str], default: str) -> str:
    best, best_len = default, -1
    for prefix, fix in fixes.items():
        if loc[: len(prefix)] == prefix and len(prefix) > best_len:
            best, best_len = fix, len(prefix)
    return best


def describe_error(
    error: ValidationError,
    source: str,
    *,
    fixes: Mapping[tuple[str, ...], str] = _FIXES,
    default_fix: str = _MANIFEST_FIX,
) -> str:
    """One line for the first problem: ``FILE: FIELD = VALUE: RULE; FIX``."""
    first = error.errors(include_url=False)[0]
    loc = tuple(str(part) for part in first["loc"])
    field = ".".join(loc) or "(whole file)"
    msg = first["msg"]
    # "Value error, must be ..." -> "must be ..."; pydantic's own messages start upper-case.
    msg = msg.removeprefix("Value error, ")
    msg = msg[:1].lower() + msg[1:]
    fix = _fix_for(loc, fixes, default_fix)
    if first["type"] == "missing":
        return f"{source}: {field} is missing (the file is incomplete or damaged); {fix}"
    return f"{source}: {field} = {_short(first['input'])}: {msg}; {fix}"


_M = TypeVar("_M", bound=BaseModel)


def _validate(
    model: type[_M],
    data: Any,
    source: str,
    what: str,
    make_error: Callable[[str], Exception],
    **kwargs,
) -> _M:
    if not isinstance(data, dict):
        raise make_error(
            f"{source} must hold a JSON object ({what}), not a JSON "
            f"{json_kind(data)}; {kwargs.get('default_fix', _MANIFEST_FIX)}"
        )
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise make_error(describe_error(exc, source, **kwargs)) from None


def json_kind(data: Any) -> str:
    return {
        list: "list",
        str: "string",
        bool: "boolean",
        int: "number",
        float: "number",
        type(None): "null",
    }.get(type(data), type(data).__name__)


def validate_manifest(
    data: Any, source: str | Path, make_error: Callable[[str], Exception]
) -> BundleManifest:
    """``data`` (the parsed ``bundle.json``) as a :class:`BundleManifest`, or ``make_error``
    raised with one line naming the field, the value and the fix."""
    return _validate(BundleManifest, data, str(source), "the model bundle manifest", make_error)


def validate_prototype_meta(
    data: Any, source: str | Path, make_error: Callable[[str], Exception]
) -> PrototypeMeta:
    return _validate(
        PrototypeMeta,
        data,
        str(source),
        "the prototype memory",
        make_error,
        fixes={},
        default_fix=_PROTOTYPE_FIX,
    )
