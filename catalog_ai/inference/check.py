"""A bundle is trusted only after it has classified a photo: the check run before a model is
registered or activated.

The manifest schema (:mod:`catalog_ai.model.bundle_schema`) says the numbers are sane; only loading
the weights and running them says the model works. Without this, a bundle whose
``model.safetensors`` is unreadable registered and activated, and every upload then stayed
``pending`` because the workers could not load it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from catalog_ai.errors import CatalogAIError
from catalog_ai.model.bundle import BundleError, ModelBundle

__all__ = ["check_bundle", "generated_photo"]


def generated_photo(size: int = 64):
    """A PIL image of smooth colour gradients with some noise (the same pixels every time)."""
    from PIL import Image

    ramp = np.linspace(0, 255, size)
    rng = np.random.default_rng(0)
    pixels = np.stack(
        [
            np.add.outer(ramp, np.zeros(size)),
            np.add.outer(np.zeros(size), ramp),
            np.full((size, size), 128.0),
        ],
        axis=-1,
    )
    pixels = np.clip(pixels + rng.normal(0, 10, pixels.shape), 0, 255).astype(np.uint8)
    return Image.fromarray(pixels)


def check_bundle(path: str | Path) -> ModelBundle:
    """Load the bundle at ``path`` with its weights and classify one generated photo; a
    :class:`BundleError` in one line when any of it fails or the outputs are not finite."""
    from catalog_ai.inference.predictor import Predictor

    bundle = ModelBundle.load(path)
    predictor = Predictor(bundle, freeze=False)  # one photo: tracing would cost more than it saves
    try:
        # Resize, network and decision as for an upload; the photo is made in memory, so the
        # upload limits (CATALOG_AI_MAX_IMAGE_PIXELS ...) are not what is tested here.
        analysis = predictor.analyse([predictor.square(generated_photo())])
        predictor.decide(analysis, 0)
    except CatalogAIError:
        raise
    except Exception as exc:
        raise BundleError(
            f"{bundle.path}: the model failed on a generated test photo "
            f"({type(exc).__name__}: {_first_line(exc)}); retrain or re-copy the bundle"
        ) from exc
    if not (np.isfinite(analysis.embeddings).all() and np.isfinite(analysis.node_probs).all()):
        raise BundleError(
            f"{bundle.path}: {bundle.weights_path.name} gives NaN or infinite outputs on a "
            "generated test photo (damaged weights); retrain or re-copy the bundle"
        )
    return bundle


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0][:200] if text else ""
