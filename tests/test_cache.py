from __future__ import annotations

import numpy as np

from mmpost.encoders.cache import FeatureCache, content_key


def test_computes_once_and_reuses_across_instances(tmp_path):
    calls = []

    def compute(pos):
        calls.append(list(pos))
        return np.array([[float(i), 1.0] for i in pos], dtype=np.float32)

    keys = [content_key(t) for t in ("a", "b", "c")]
    out = FeatureCache(tmp_path, identity="tower-1").get_or_compute(keys, compute)
    assert out.tolist() == [[0, 1], [1, 1], [2, 1]]
    again = FeatureCache(tmp_path, identity="tower-1").get_or_compute(keys[::-1], compute)
    assert again.tolist() == [[2, 1], [1, 1], [0, 1]]
    assert calls == [[0, 1, 2]]


def test_only_missing_rows_are_computed_and_duplicates_once(tmp_path):
    cache = FeatureCache(tmp_path, identity="t")
    cache.get_or_compute(["k1"], lambda pos: np.ones((len(pos), 2), np.float32))
    seen = []

    def compute(pos):
        seen.append(list(pos))
        return np.zeros((len(pos), 2), np.float32)

    out = cache.get_or_compute(["k1", "k2", "k2", "k3"], compute)
    assert seen == [[1, 3]]
    assert out[:, 0].tolist() == [1, 0, 0, 0]


def test_any_change_of_identity_invalidates(tmp_path):
    FeatureCache(tmp_path, identity="minilm:max=128").put(["x"], np.ones((1, 2), np.float32))
    other = FeatureCache(tmp_path, identity="minilm:max=64")
    assert "x" not in other
    assert "x" in FeatureCache(tmp_path, identity="minilm:max=128")


def test_rows_are_memory_mapped_and_partial_writes_ignored(tmp_path):
    cache = FeatureCache(tmp_path, identity="t")
    cache.put(["a", "b"], np.arange(6, dtype=np.float32).reshape(2, 3))
    (cache.dir / ".shard-x.npy.123.tmp").write_bytes(b"half")      # a crash mid-write leaves only a temp file
    (cache.dir / "shard-orphan.npy").write_bytes(b"no keys file")  # an array without keys is not committed
    fresh = FeatureCache(tmp_path, identity="t")
    assert len(fresh) == 2
    assert isinstance(fresh._array(fresh._index["a"][0]), np.memmap)
    assert fresh.get(["b"]).tolist() == [[3, 4, 5]]
