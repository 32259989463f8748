"""Re-calibration on independent photos (``catalog-ai calibrate --data``): temperature,
thresholds with auto-accept switched on, and the open-set threshold re-set on those photos."""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from helpers import make_tree

from catalog_ai.cli import cli
from catalog_ai.inference.predictor import Predictor
from catalog_ai.inference.recalibrate import recalibrate_bundle
from catalog_ai.model.bundle import ModelBundle
from catalog_ai.model.fusion import open_set_threshold
from catalog_ai.training.sources import load_folder_examples


def _hashes(directory) -> dict[str, str]:
    return {
        str(f.relative_to(directory)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(directory.rglob("*"))
        if f.is_file()
    }


def _copy(trained_bundle, tmp_path):
    return Path(
        shutil.copytree(
            trained_bundle.path, tmp_path / "bundle", ignore=shutil.ignore_patterns("checkpoints")
        )
    )


def test_recalibration_refits_temperature_thresholds_and_open_set(trained_bundle, tmp_path):
    bundle_dir = _copy(trained_bundle, tmp_path)
    before = ModelBundle.load(bundle_dir)
    assert not before.thresholds.auto_accept_enabled  # trained without independent photos
    data = make_tree(
        tmp_path / "new-photos", per_class=15, seed=7
    )  # new photos, not the training ones
    _, examples, _ = load_folder_examples(data)
    files, labels = [e.file for e in examples], [e.label for e in examples]

    files_before = _hashes(bundle_dir)

    bundle, cal, report = recalibrate_bundle(bundle_dir, files, labels, source="test photos")

    assert report["n_photos"] == 60 and report["source"] == "test photos"
    assert cal.temperature > 0 and report["temperature"] == cal.temperature
    # A new version next to the calibrated one, whose files are not touched.
    assert _hashes(bundle_dir) == files_before
    assert bundle.path.parent == bundle_dir.parent and bundle.version != before.version
    again = ModelBundle.load(bundle.path)  # saved, not only returned
    assert again.version == bundle.version and again.parent["version"] == before.version
    assert (
        again.temperature == cal.temperature
        and again.taxonomy.fingerprint() == before.taxonomy.fingerprint()
    )
    assert "test photos" in again.thresholds.calibrated_on
    assert (bundle.path / "model.safetensors").read_bytes() == (
        bundle_dir / "model.safetensors"
    ).read_bytes()
    # The open-set threshold is the false-alarm quantile of these photos' best prototype cosines.
    predictor = Predictor.load(bundle.path)
    embeddings = np.concatenate(
        [
            predictor.embed_logits([predictor.prepare(f) for f in files[i : i + 8]])[0]
            .float()
            .numpy()
            for i in range(0, len(files), 8)
        ]
    )
    best = predictor.prototypes.similarities(embeddings).max(axis=1)
    assert np.isclose(
        predictor.prototypes.fusion.open_set_cosine, open_set_threshold(best), atol=1e-5
    )
    assert np.isclose(report["open_set_cosine"], predictor.prototypes.fusion.open_set_cosine)
    assert (best < predictor.prototypes.fusion.open_set_cosine).mean() <= 0.05


def test_calibrate_command(trained_bundle, tmp_path, catalog_home):
    bundle_dir = _copy(trained_bundle, tmp_path)
    data = make_tree(tmp_path / "new-photos", per_class=15, seed=8)
    result = CliRunner().invoke(cli, ["calibrate", "--model", str(bundle_dir), "--data", str(data)])
    assert result.exit_code == 0, result.output
    assert "calibrated on 60 photos" in result.output
    too_few = CliRunner().invoke(
        cli, ["calibrate", "--model", str(bundle_dir), "--data", str(data), "--min-photos", "100"]
    )
    assert too_few.exit_code != 0 and "at least 100 are needed" in too_few.output
