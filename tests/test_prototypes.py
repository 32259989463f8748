"""Prototypes refined with unlabelled photos (``refine_with_pool``)."""

from __future__ import annotations

import numpy as np

from catalog_ai.prototypes import PoolParams, refine_with_pool


def unit(x: np.ndarray) -> np.ndarray:
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def clusters(rng: np.random.Generator, centres: np.ndarray, n: int, noise: float) -> tuple[np.ndarray, np.ndarray]:
    labels = np.repeat(np.arange(len(centres)), n)
    return unit(centres[labels] + noise * rng.standard_normal((len(labels), centres.shape[1]))), labels


def test_a_noisy_one_shot_prototype_moves_to_the_centre_of_its_unlabelled_photos():
    rng = np.random.default_rng(0)
    centres = unit(rng.standard_normal((6, 32)))
    pool, _ = clusters(rng, centres, 40, 0.15)
    # Each category's single example is a poor photo: far off its centre.
    examples = unit(centres + 0.35 * rng.standard_normal(centres.shape))
    before = (examples * centres).sum(1)
    after = (refine_with_pool(examples, pool, PoolParams(beta=20, iterations=3)) * centres).sum(1)
    assert (after > before).all()
    assert after.min() > 0.95


def test_photos_of_other_photos_leave_classification_of_a_fresh_sample_better():
    rng = np.random.default_rng(1)
    centres = unit(rng.standard_normal((10, 16)))
    pool, _ = clusters(rng, centres, 30, 0.3)
    test, truth = clusters(rng, centres, 30, 0.3)
    examples = unit(centres + 0.5 * rng.standard_normal(centres.shape))
    acc_before = ((test @ unit(examples).T).argmax(1) == truth).mean()
    acc_after = ((test @ refine_with_pool(examples, pool, PoolParams()).T).argmax(1) == truth).mean()
    assert acc_after > acc_before + 0.05


def test_fixed_categories_keep_their_photos_and_do_not_move():
    rng = np.random.default_rng(2)
    centres = unit(rng.standard_normal((3, 16)))
    pool, labels = clusters(rng, centres, 30, 0.1)
    fixed = centres[:2]
    # The new category's example sits between a known category and its true centre: without the
    # known categories competing, their photos would pull it away.
    example = unit(centres[2] + 0.6 * centres[0])[None]
    alone = refine_with_pool(example, pool[labels < 2], PoolParams(iterations=5))
    competing = refine_with_pool(example, pool, PoolParams(iterations=5), fixed=fixed)
    assert (competing @ centres[2]).item() > 0.95
    assert (alone @ centres[0]).item() > (alone @ centres[2]).item()  # it drifted to other photos
    assert fixed.shape == (2, 16) and np.allclose(fixed, centres[:2])


def test_examples_stay_in_and_an_empty_pool_changes_nothing():
    rng = np.random.default_rng(3)
    sums = rng.standard_normal((4, 8)) * 3
    out = refine_with_pool(sums, np.zeros((0, 8)), PoolParams())
    assert np.allclose(out, unit(sums), atol=1e-6)
    assert np.allclose(refine_with_pool(sums, unit(rng.standard_normal((5, 8))), PoolParams(iterations=0)),
                       unit(sums), atol=1e-6)
    # A category with many examples moves less than one with a single example, for the same pool.
    pool = unit(np.tile(rng.standard_normal(8), (20, 1)))
    one, many = unit(sums[:1]), 10 * unit(sums[:1])
    moved_one = refine_with_pool(one, pool, PoolParams(beta=1))
    moved_many = refine_with_pool(many, pool, PoolParams(beta=1))
    assert (moved_many @ unit(sums[0])).item() > (moved_one @ unit(sums[0])).item()


def test_memory_refine_keeps_examples_apart_and_survives_saving(tmp_path):
    from safetensors.numpy import load_file, save_file

    from catalog_ai.prototypes import PrototypeMemory, PrototypeError

    rng = np.random.default_rng(4)
    centres = 3 * unit(rng.standard_normal((3, 8)))
    memory = PrototypeMemory(center=np.zeros(8, dtype=np.float32))
    memory.add("A", centres[0] + 0.1 * rng.standard_normal((10, 8)), source="train")
    memory.add("B", centres[1] + 0.1 * rng.standard_normal((10, 8)), source="train")
    try:
        memory.refine(centres, PoolParams())
    except PrototypeError as exc:
        assert "fewshot add" in str(exc)
    else:
        raise AssertionError("refining a memory without few-shot categories must be refused")
    memory.add("C", centres[2] + 1.5 * rng.standard_normal((1, 8)), source="fewshot")
    sums = memory.sums.copy()
    pool = centres[rng.integers(0, 3, 60)] + 0.1 * rng.standard_normal((60, 8))
    taken = memory.refine(pool, PoolParams(), description="test")
    assert set(taken) == {"C"} and 5 < taken["C"] < 60
    assert np.array_equal(memory.sums, sums)  # the labelled examples are untouched
    assert np.allclose(memory.pool_sums[:2], 0)
    memory.save(tmp_path)
    loaded = PrototypeMemory.load(tmp_path)
    assert np.allclose(loaded.prototypes(), memory.prototypes()) and loaded.pool_info["photos"] == 60
    # A memory saved before refinement existed (no pool_sums) loads unrefined.
    arrays = load_file(str(tmp_path / "prototypes.safetensors"))
    del arrays["pool_sums"]
    save_file(arrays, str(tmp_path / "prototypes.safetensors"))
    old = PrototypeMemory.load(tmp_path)
    assert np.allclose(old.prototypes(), unit(sums)) and old.pool_sums.shape == sums.shape
