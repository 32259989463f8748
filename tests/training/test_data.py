"""Training data: the stratified hold-out split, the decoded-photo cache, label checks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from helpers import LEAF_COLOURS, LEAF_PATHS, make_tree, write_photo

from catalog_ai.photos import decode as images
from catalog_ai.taxonomy import Taxonomy
from catalog_ai.training.data import (
    DecodedCache,
    Example,
    PlainDataset,
    TrainingDataError,
    check_examples,
    examples_from_folder,
    stratified_split,
)

TREE = Taxonomy.from_paths(LEAF_PATHS)


def _examples(counts: dict[str, int]) -> list[Example]:
    return [
        Example(file=Path(f"/photos/{label}/{i}.jpg"), label=label)
        for label, n in counts.items()
        for i in range(n)
    ]


def _of(items: list[Example], label: str) -> list[Example]:
    return [e for e in items if e.label == label]


def test_stratified_split_keeps_labels_with_four_photos_on_both_sides():
    counts = {"A": 10, "B": 4, "C": 3, "D": 1, "E > F": 25}
    examples = _examples(counts)
    train, held = stratified_split(examples, 0.1, seed=7)
    # Hand: round(0.1 * n), at least 1 where n >= 4, none where n < 4.
    assert {label: len(_of(held, label)) for label in counts} == {
        "A": 1,
        "B": 1,
        "C": 0,
        "D": 0,
        "E > F": 2,
    }
    for label, n in counts.items():
        assert len(_of(train, label)) == n - len(_of(held, label)) and _of(train, label)
    assert sorted(map(str, (e.file for e in train + held))) == sorted(
        map(str, (e.file for e in examples))
    )
    assert not {e.file for e in train} & {e.file for e in held}


def test_stratified_split_repeats_with_the_seed():
    examples = _examples({"A": 20, "B": 12, "C": 8})
    first = stratified_split(examples, 0.25, seed=3)
    assert stratified_split(examples, 0.25, seed=3) == first
    # Another seed holds out other photos (for these sizes at least one of 4 seeds must differ).
    assert any(stratified_split(examples, 0.25, seed=s)[1] != first[1] for s in (4, 5, 6, 7))


def test_decoded_cache_decodes_each_photo_once(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    files = [write_photo(tmp_path / "in" / f"{i}.png", (200, 40, 40), rng) for i in range(3)]
    copy = tmp_path / "in" / "copy.png"
    copy.write_bytes(files[0].read_bytes())  # same content as photo 0: cached once
    examples = [Example(f, "Fruit > Apple > Red") for f in [*files, copy]]
    decoded: list[str] = []
    real_load = images.load_image

    def counting_load(source, **kwargs):
        decoded.append(kwargs.get("name"))
        return real_load(source, **kwargs)

    monkeypatch.setattr(images, "load_image", counting_load)
    cache = DecodedCache(tmp_path / "cache", size=24)
    ok, failed = cache.add(examples)
    assert failed == [] and len(ok) == 4
    assert len(decoded) == 3  # the copy hashes like photo 0
    assert ok[0][1] == ok[3][1] and len({d for _, d in ok}) == 3
    stored = cache.load(ok[1][1])
    assert stored.shape == (3, 24, 24) and stored.dtype == np.uint8  # CHW
    red, green = stored[0].mean(), stored[1].mean()
    assert red > 150 and green < 90  # the photo's colour survived decoding

    ok_again, failed_again = cache.add(examples)
    assert len(decoded) == 3  # nothing decoded the second time
    assert ok_again == ok and failed_again == []
    # Another size is another cache.
    DecodedCache(tmp_path / "cache", size=16).add(examples[:1])
    assert len(decoded) == 4


def test_decoded_cache_reports_unreadable_photos_with_reasons(tmp_path):
    good = write_photo(tmp_path / "good.png", (10, 10, 200), np.random.default_rng(1))
    empty = tmp_path / "empty.jpg"
    empty.write_bytes(b"")
    text = tmp_path / "notes.jpg"
    text.write_text("this is a text file, not a photo\n")
    missing = tmp_path / "gone.jpg"
    examples = [Example(p, "Veg > Carrot") for p in (good, empty, text, missing)]
    ok, failed = DecodedCache(tmp_path / "cache", size=24).add(examples)
    assert [e.file for e, _ in ok] == [good]
    reasons = {e.file.name: reason for e, reason in failed}
    assert set(reasons) == {"empty.jpg", "notes.jpg", "gone.jpg"}
    assert reasons["empty.jpg"] == "file is empty"
    assert reasons["gone.jpg"] == "file not found"
    assert reasons["notes.jpg"]  # a reason, whatever its wording


def test_plain_dataset_is_the_centre_crop_of_the_cached_square(tmp_path):
    rng = np.random.default_rng(2)
    photo = write_photo(tmp_path / "p.png", (120, 120, 120), rng)
    cache = DecodedCache(tmp_path / "cache", size=36)
    ok, _ = cache.add([Example(photo, "Veg > Carrot")])
    item, row = PlainDataset(cache, [ok[0][1]], [6], image_size=32)[0]
    assert row == 6 and tuple(item.shape) == (3, 32, 32)
    assert np.array_equal(item.numpy(), np.asarray(cache.load(ok[0][1]))[:, 2:34, 2:34])


def test_check_examples_names_an_empty_category_and_the_fix():
    examples = [Example(Path(f"/p/{i}.jpg"), label) for i, label in enumerate(LEAF_PATHS[:3])]
    with pytest.raises(TrainingDataError) as info:
        check_examples(TREE, examples)
    message = str(info.value)
    assert (
        "'Veg > Carrot'" in message
        and "add photos" in message
        and "remove the empty folder" in message
    )


def test_check_examples_refuses_unknown_labels():
    examples = [Example(Path(f"/p/{i}.jpg"), label) for i, label in enumerate(LEAF_PATHS)]
    examples.append(Example(Path("/p/x.jpg"), "Fruit > Kiwi"))
    with pytest.raises(
        TrainingDataError, match=r"'Fruit > Kiwi'.*import the category tree or fix the labels"
    ):
        check_examples(TREE, examples)


def test_check_examples_accepts_inner_labels_beside_labelled_leaves():
    examples = [
        Example(Path(f"/p/{i}.jpg"), label)
        for i, label in enumerate([*LEAF_PATHS, "Fruit > Apple", "Veg"])
    ]
    check_examples(TREE, examples)  # no error


def test_a_leaf_labelled_only_through_its_parent_is_empty():
    examples = [
        Example(Path(f"/p/{i}.jpg"), label)
        for i, label in enumerate(["Fruit > Apple", "Fruit > Banana", "Veg > Carrot"])
    ]
    with pytest.raises(TrainingDataError, match="'Fruit > Apple > Green'"):
        check_examples(TREE, examples)


def test_examples_from_folder_labels_inner_node_photos(tmp_path):
    root = make_tree(tmp_path / "tree", per_class=2, inner=3)
    taxonomy, examples = examples_from_folder(root)
    assert taxonomy.leaf_ids == LEAF_PATHS
    labels = [e.label for e in examples]
    assert labels.count("Fruit > Apple") == 3 and len(labels) == 2 * len(LEAF_COLOURS) + 3
