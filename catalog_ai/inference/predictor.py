"""Serving a model bundle: photos in; embeddings, calibrated node probabilities, Decisions out."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from catalog_ai.backbones import create_backbone, get_backbone
from catalog_ai.errors import BackboneError, ImageError
from catalog_ai.inference.analysis import Analysis, Prediction
from catalog_ai.inference.frozen import freeze_backbone
from catalog_ai.model.bundle import BundleError, ModelBundle
from catalog_ai.model.decision import Decider, Decision
from catalog_ai.model.fusion import fuse
from catalog_ai.model.hierarchy import TreeIndex
from catalog_ai.model.network import HierarchicalClassifier
from catalog_ai.model.photo_fusion import PhotoFusion
from catalog_ai.model.preprocess import (
    eval_square_size,
    normalise,
    square,
    tta_square_size,
    tta_views,
)
from catalog_ai.model.prototypes import PrototypeMemory
from catalog_ai.photos import decode as images
from catalog_ai.settings import get_settings

__all__ = ["Analysis", "Prediction", "Predictor"]

log = logging.getLogger(__name__)


class Predictor:
    """Loads a bundle once; then ``predict`` classifies batches of photos.

    Batches of 8 are the sweet spot on a 2-core CPU (measured: larger batches fall out of cache).
    """

    # The revision of the model version's prototype memory this predictor serves (set by the
    # worker's model cache; see catalog_ai.services.versions), recorded on every suggestion.
    memory_revision: int | None = None
    # How a product's photos are fused into one decision (catalog_ai.model.photo_fusion).
    photo_fusion: PhotoFusion = PhotoFusion()

    def __init__(
        self,
        bundle: ModelBundle,
        *,
        device: str = "cpu",
        batch_size: int = 8,
        freeze: bool | None = None,
    ):
        """``freeze``: serve the backbone as a frozen graph on the CPU (default: the
        ``CATALOG_AI_FREEZE_NETWORK`` setting; see :mod:`catalog_ai.inference.frozen`)."""
        self.bundle = bundle
        self.device = torch.device(device)
        self.batch_size = batch_size
        if freeze is None:
            freeze = get_settings().freeze_network
        self._freeze = freeze and self.device.type == "cpu"
        self._frozen_backbone: torch.nn.Module | None = None
        self._freeze_lock = threading.Lock()
        try:
            spec = get_backbone(bundle.backbone)
        except BackboneError as exc:
            raise BundleError(
                f"model {bundle.version} needs backbone {bundle.backbone!r}, which is not "
                f"installed here ({exc}); install the plugin that provides it"
            ) from exc
        if spec.embedding_dim != bundle.embedding_dim:
            raise BundleError(
                f"{bundle.path}: backbone.embedding_dim = {bundle.embedding_dim} but the installed "
                f"backbone {bundle.backbone!r} gives {spec.embedding_dim}; install the plugin "
                "version the model was trained with, or restore bundle.json"
            )
        network = HierarchicalClassifier(
            create_backbone(bundle.backbone, pretrained=False),
            spec.embedding_dim,
            len(bundle.taxonomy.leaf_ids),
        )
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            state = load_file(str(bundle.weights_path), device="cpu")
        except (SafetensorError, OSError) as exc:
            raise BundleError(
                f"{bundle.weights_path} cannot be read ({exc}); retrain or re-copy the bundle"
            ) from exc
        try:
            missing, unexpected = network.load_state_dict(state, strict=False)
        except RuntimeError as exc:  # shape mismatch: strict=False does not cover it
            raise BundleError(
                f"{bundle.path}: weights do not fit backbone {bundle.backbone!r} and the bundle's "
                f"tree of {len(bundle.taxonomy.leaf_ids)} leaves "
                f"({str(exc).splitlines()[-1].strip()}); "
                "the weights file comes from another model or plugin version"
            ) from exc
        if missing or unexpected:
            raise BundleError(
                f"{bundle.path}: weights do not fit backbone {bundle.backbone!r} "
                f"(missing {missing[:3]}, unexpected {unexpected[:3]}); the plugin version may "
                "differ"
            )
        self.network = network.to(self.device).to(memory_format=torch.channels_last).eval()
        memory = PrototypeMemory.load(bundle.path)
        if memory is not None and memory.dim != spec.embedding_dim:
            raise BundleError(
                f"{bundle.path}: the prototype memory has {memory.dim}-dimensional vectors but the "
                f"model's embeddings have {spec.embedding_dim}; the prototype files come from "
                "another model: re-add the few-shot categories"
            )
        self.set_prototypes(memory)
        # Test-time views (a bundle field: they change decisions, so they are a model version's).
        self.tta = bundle.test_time_augmentation
        self.input_side = tta_square_size(bundle.image_size, self.tta)
        self.square_size = eval_square_size(self.input_side, bundle.eval_crop_pct)
        self.interpolation = bundle.preprocessing.interpolation

    def set_prototypes(self, memory: PrototypeMemory | None) -> None:
        """Use ``memory`` (or none): categories served by prototypes join the head's categories.

        The tree the decisions walk is the head's tree extended with those categories' paths;
        the output classes are the head's leaves (in head column order) then the prototype-only
        categories, so an inner node of the head's tree can become a category of its own.
        """
        self.prototypes = memory
        head_tree = self.bundle.taxonomy
        head_classes = set(head_tree.leaf_ids)
        only = (
            []
            if memory is None
            else [
                (i, p)
                for i, (p, src) in enumerate(zip(memory.paths, memory.sources, strict=True))
                if src != "train" and p not in head_classes
            ]
        )
        self._proto_only_idx = torch.tensor([i for i, _ in only], dtype=torch.long)
        only_set = {i for i, _ in only}
        self._trained_idx = torch.tensor(
            [] if memory is None else [i for i in range(len(memory.paths)) if i not in only_set],
            dtype=torch.long,
        )
        self.proto_only_paths = [p for _, p in only]
        taxonomy = head_tree.extended(self.proto_only_paths) if only else head_tree
        rows = taxonomy.node_index
        class_rows = [rows[i] for i in head_tree.leaf_ids] + [
            rows[p] for p in self.proto_only_paths
        ]
        self.taxonomy = taxonomy
        self.n_head_classes = len(head_tree.leaf_ids)
        self.tree = TreeIndex(taxonomy, class_rows).to(self.device)
        self.decider = Decider(
            taxonomy,
            self.bundle.thresholds,
            model_version=self.bundle.version,
            class_rows=class_rows,
        )

    @classmethod
    def load(cls, path: str | Path, **kwargs) -> Predictor:
        return cls(ModelBundle.load(path), **kwargs)

    @property
    def version(self) -> str:
        return self.bundle.version

    # -- stages -----------------------------------------------------------------------------

    def prepare(self, source: str | Path | bytes, *, name: str | None = None) -> np.ndarray:
        """Decode one photo safely into the network's ``(3, S, S)`` uint8 input square.

        Every failure (decoding, the aspect-ratio bound, memory) is an :class:`ImageError` of
        this photo, so a caller that isolates photos needs to catch that one error only."""
        label = name if name is not None or isinstance(source, bytes) else str(source)
        img = images.load_image(source, target_size=self.square_size, name=name)
        try:
            return self.square(img, source=label)
        except ImageError:
            raise
        except Exception as exc:
            raise ImageError(
                f"cannot prepare the photo for the model ({str(exc) or type(exc).__name__})",
                source=label,
            ) from exc

    def square(self, img: Image.Image, *, source: str | None = None) -> np.ndarray:
        """A decoded photo as the network's ``(3, S, S)`` uint8 input: timm's evaluation
        geometry for the bundle's size and crop (:func:`catalog_ai.model.preprocess.square`)."""
        sq = square(
            img,
            self.input_side,
            self.interpolation,
            crop_pct=self.bundle.eval_crop_pct,
            source=source,
        )
        return np.ascontiguousarray(sq.transpose(2, 0, 1))

    @torch.inference_mode()
    def embed_logits(self, squares: Sequence[np.ndarray]) -> tuple[torch.Tensor, torch.Tensor]:
        """Prepared squares → ``(embeddings (B, D), raw leaf logits (B, leaves))``, uncalibrated;
        with test-time augmentation, the mean embedding of each photo's views."""
        batch = torch.from_numpy(np.stack(squares)).to(self.device)
        pre = self.bundle.preprocessing
        x = normalise(tta_views(batch, self.bundle.image_size, self.tta), pre.mean, pre.std)
        emb = self._backbone(x)(x)
        if len(emb) != len(batch):
            emb = emb.view(-1, len(batch), emb.shape[-1]).mean(0)
        return emb, self.network.head(emb)

    def _backbone(self, x: torch.Tensor) -> torch.nn.Module:
        """The frozen backbone, traced on the first batch (see ``freeze``); else the eager one."""
        if self._freeze:
            with self._freeze_lock:  # worker threads may share one predictor
                if self._freeze:
                    self._frozen_backbone = freeze_backbone(self.network.backbone, x)
                    self._freeze = False
        return self.network.backbone if self._frozen_backbone is None else self._frozen_backbone

    @property
    def frozen(self) -> bool:
        """Whether batches go through the frozen backbone (known after the first batch)."""
        return self._frozen_backbone is not None

    @torch.inference_mode()
    def analyse(self, squares: Sequence[np.ndarray]) -> Analysis:
        """Prepared squares → embeddings, fused calibrated node probabilities, and per photo
        whether its most probable category is prototype-only and whether it is open-set."""
        emb, leaf_logits = self.embed_logits(squares)
        return self.analyse_embeddings(emb, leaf_logits)

    @torch.inference_mode()
    def analyse_embeddings(
        self, emb: torch.Tensor | np.ndarray, leaf_logits: torch.Tensor | None = None
    ) -> Analysis:
        """:meth:`analyse` from backbone embeddings (the head runs on them unless its raw
        ``leaf_logits`` are given): for embeddings computed once and scored many times."""
        if isinstance(emb, np.ndarray):
            emb = torch.from_numpy(np.ascontiguousarray(emb, dtype=np.float32)).to(self.device)
        if leaf_logits is None:
            leaf_logits = self.network.head(emb)
        head = leaf_logits.double() / self.bundle.temperature
        emb_np = emb.float().cpu().numpy()
        n = len(emb_np)
        open_set = np.zeros(n, dtype=bool)
        if self.prototypes is not None and len(self.prototypes.paths):
            cos = torch.from_numpy(self.prototypes.similarities(emb_np)).double()
            trained_best = (
                cos[:, self._trained_idx].max(dim=1).values if len(self._trained_idx) else None
            )
            probs = fuse(head, cos[:, self._proto_only_idx], self.prototypes.fusion, trained_best)
            open_set = cos.max(dim=1).values.numpy() < self.prototypes.fusion.open_set_cosine
        else:
            probs = head.softmax(dim=1)
        from_prototype = (probs.argmax(dim=1) >= self.n_head_classes).cpu().numpy()
        node_probs = self.tree.node_probs(probs).cpu().numpy()
        return Analysis(emb_np, node_probs, from_prototype, open_set, probs.cpu().numpy())

    def analyse_each(self, squares: Sequence[np.ndarray]) -> list[tuple[Analysis, int] | str]:
        """:meth:`analyse` in one batch, isolating failures: per square, ``(analysis, row)`` or
        the reason the network failed on it.

        When the batched forward fails (out of memory, a kernel that rejects some input), every
        square is run again alone, so only the photo that makes the network fail fails, and its
        batch-mates get their results."""
        if not squares:
            return []
        try:
            analysis = self.analyse(squares)
        except Exception as exc:
            if len(squares) == 1:
                return [_network_failure(exc)]
            log.warning(
                "a batch of %d photos failed in the network (%s); running them one by one",
                len(squares),
                exc,
            )
        else:
            return [(analysis, j) for j in range(len(squares))]
        out: list[tuple[Analysis, int] | str] = []
        for sq in squares:
            try:
                out.append((self.analyse([sq]), 0))
            except Exception as exc:
                out.append(_network_failure(exc))
        return out

    def forward(self, squares: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
        """Prepared squares → ``(embeddings (B, D), calibrated node probabilities (B, nodes))``."""
        a = self.analyse(squares)
        return a.embeddings, a.node_probs

    def decide(self, analysis: Analysis, i: int) -> Decision:
        return self.decider.decide(
            analysis.node_probs[i],
            source="prototype" if analysis.from_prototype[i] else "head",
            open_set=bool(analysis.open_set[i]),
        )

    def decide_product(self, analysis: Analysis, rows: Sequence[int]) -> Decision:
        """One decision for a product from the photos ``rows`` of ``analysis``: their calibrated
        class distributions fused by :attr:`photo_fusion`, then the usual walk down the tree.

        One photo is decided exactly as :meth:`decide` does. The product counts as "possibly a
        new category" when at least half of its photos are far from every known category (one
        odd photo, a label or a barcode, does not flag a product the others recognise), and as
        prototype-sourced when its fused most probable category is prototype-only."""
        rows = list(rows)
        if not rows:
            raise ValueError("decide_product needs at least one photo row")
        if len(rows) == 1 or analysis.class_probs is None:
            return self.decide(analysis, rows[0])
        chosen = self.photo_fusion.chosen_photo(analysis.class_probs[rows])
        if chosen is not None:
            return self.decide(analysis, rows[chosen])
        fused = self.photo_fusion.fuse(analysis.class_probs[rows])
        node_probs = self.tree.node_probs(torch.from_numpy(fused[None]).to(self.device))
        far = int(np.count_nonzero(analysis.open_set[rows]))
        return self.decider.decide(
            node_probs[0].cpu().numpy(),
            source="prototype" if int(np.argmax(fused)) >= self.n_head_classes else "head",
            open_set=2 * far >= len(rows),
        )

    def predict(
        self,
        sources: Iterable[str | Path | bytes],
        *,
        names: Sequence[str] | None = None,
        progress: bool = False,
    ) -> list[Prediction]:
        """Classify photos; a photo that cannot be decoded, prepared or run through the network
        gives a Prediction with ``error`` set (the others are not affected); never raises for a
        photo."""
        from catalog_ai.progress import progress_bar

        sources = list(sources)
        labels = (
            list(names)
            if names is not None
            else [
                str(s) if not isinstance(s, bytes) else f"upload-{i}" for i, s in enumerate(sources)
            ]
        )
        out = [Prediction(source=label) for label in labels]
        with progress_bar(
            total=len(sources), desc="classifying", unit="photo", enable=progress
        ) as bar:
            for start in range(0, len(sources), self.batch_size):
                ready: list[tuple[int, np.ndarray]] = []
                for i in range(start, min(start + self.batch_size, len(sources))):
                    try:
                        ready.append((i, self.prepare(sources[i], name=labels[i])))
                    except ImageError as exc:
                        out[i].error = exc.reason
                results = self.analyse_each([sq for _, sq in ready])
                for (i, _), result in zip(ready, results, strict=True):
                    if isinstance(result, str):
                        out[i].error = result
                        continue
                    analysis, j = result
                    try:
                        decision = self.decide(analysis, j)
                    except Exception as exc:
                        log.exception("deciding on %s failed", labels[i])
                        out[i].error = f"the model could not decide on this photo ({exc})"
                        continue
                    out[i].embedding = analysis.embeddings[j]
                    out[i].node_probs = analysis.node_probs[j]
                    out[i].decision = decision
                bar.update(min(self.batch_size, len(sources) - start))
        return out


def _network_failure(exc: BaseException) -> str:
    log.error("the network failed on a photo", exc_info=exc)
    detail = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if isinstance(exc, MemoryError):
        detail = "out of memory"
    return f"the model failed on this photo ({detail}); try again, or replace the photo"
