"""The embedding id behind each indexed photo: replaced with the photo, counted and summed."""

from __future__ import annotations

import numpy as np
import pytest

from catalog_ai.index import IndexKeys, SearchError


def test_keys_follow_the_index_and_round_trip(tmp_path):
    keys = IndexKeys()
    keys.add(np.array([1, 2, 3]), np.array([10, 20, 30]))
    keys.add(np.array([7]), np.array([20]))  # photo 20 re-embedded: its new embedding id
    assert (len(keys), keys.id_sum, keys.max_emb_id) == (3, 1 + 3 + 7, 7)
    keys.remove_images(np.array([10, 99]))
    assert sorted(keys.images_of(np.array([3, 7, 1]))) == [20, 30]
    keys.save(tmp_path)
    back = IndexKeys.load(tmp_path)
    assert sorted(zip(back.emb_ids, back.image_ids, strict=True)) == [(3, 30), (7, 20)]
    with pytest.raises(SearchError, match="as many"):
        keys.add(np.array([1, 2]), np.array([5]))
    np.save(tmp_path / "keys.npy", np.zeros(3))
    with pytest.raises(SearchError, match="shape"):
        IndexKeys.load(tmp_path)
