from collections import Counter

import pytest

from mmpost.data.post import Post
from mmpost.data.splits import assign_splits, by_split, hash_split


def test_hash_split_is_deterministic_and_pinned():
    keys = [f"post-{i}" for i in range(200)]
    first = [hash_split(k) for k in keys]
    assert first == [hash_split(k) for k in keys]
    # pinned: the mapping must never change between versions (it would move posts between splits)
    assert [hash_split(k) for k in ("0", "1", "2", "12", "16", "698197155698184192")] == [
        "test", "train", "test", "dev", "dev", "train"]
    other_salt = [hash_split(k, salt="other") for k in keys]
    assert other_salt != first


def test_rough_fractions():
    counts = Counter(hash_split(str(i)) for i in range(20000))
    assert abs(counts["train"] / 20000 - 0.8) < 0.02
    assert abs(counts["dev"] / 20000 - 0.1) < 0.015
    assert abs(counts["test"] / 20000 - 0.1) < 0.015
    two = Counter(hash_split(str(i), (0.5, 0.5), ("a", "b")) for i in range(4000))
    assert abs(two["a"] / 4000 - 0.5) < 0.05


def test_zero_fraction_never_chosen_and_bad_fractions():
    assert {hash_split(str(i), (0.9, 0.0, 0.1)) for i in range(2000)} == {"train", "test"}
    assert {hash_split(str(i), (1.0, 0.0, 0.0)) for i in range(500)} == {"train"}
    with pytest.raises(ValueError):
        hash_split("x", (0.8, 0.2))  # 2 fractions, 3 names
    with pytest.raises(ValueError):
        hash_split("x", (0.8, 0.3, 0.1))
    with pytest.raises(ValueError):
        hash_split("x", (1.2, -0.1, -0.1))


def test_assign_splits_keeps_existing_unless_overwrite():
    posts = [Post(id=str(i), text="t") for i in range(50)]
    posts[0].meta["split"] = "test"
    out = assign_splits(posts)
    assert out[0].meta["split"] == "test"
    assert all(p.meta["split"] == hash_split(p.id) for p in out[1:])
    assign_splits(posts, overwrite=True)
    assert posts[0].meta["split"] == hash_split("0")
    # the split depends only on the id, not on the order or the other posts
    again = assign_splits([Post(id=str(i), text="t") for i in reversed(range(50))])
    assert {p.id: p.meta["split"] for p in again} == {p.id: p.meta["split"] for p in posts}


def test_assign_splits_with_a_group_key():
    posts = [Post(id=str(i), text="t", meta={"author": f"u{i % 5}"}) for i in range(100)]
    assign_splits(posts, key=lambda p: p.meta["author"])
    per_author = {}
    for p in posts:
        per_author.setdefault(p.meta["author"], set()).add(p.meta["split"])
    assert all(len(s) == 1 for s in per_author.values())


def test_by_split_groups_in_order():
    posts = [Post(id="1", text="", meta={"split": "test"}), Post(id="2", text="", meta={"split": "train"}),
             Post(id="3", text=""), Post(id="4", text="", meta={"split": "extra"}),
             Post(id="5", text="", meta={"split": "train"})]
    groups = by_split(posts)
    assert list(groups) == ["train", "test", "unassigned", "extra"]
    assert [p.id for p in groups["train"]] == ["2", "5"]
