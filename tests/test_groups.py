import os
import random

import numpy as np
import pytest

from mmpost.data.groups import (
    IMAGE_KEY,
    check_group_by,
    components,
    describe_groups,
    group_ids,
    group_keys,
    group_names,
    image_key,
    normalise_text,
)
from mmpost.data.post import Post


def same_groups(ids, *members):
    return len({int(ids[i]) for i in members}) == 1


# ---------------------------------------------------------------------------------------------- group_by


def test_check_group_by_accepts_the_forms_and_names_the_setting_on_errors():
    assert check_group_by(["image", " text ", "column: event", "image"]) == ("image", "text", "column:event")
    assert check_group_by("image") == ("image",) and check_group_by(()) == ()
    for bad in (["images"], ["column:"], ["column"], ["user"], ["col:event"], [3], 5):
        with pytest.raises(ValueError, match=r"data\.group_by.*'image', 'text', 'column:NAME'"):
            check_group_by(bad)


def test_a_column_no_post_has_is_an_error_naming_data_columns_keep():
    posts = [Post(id="1", text="a", meta={"source": "m.csv", "row": 1, "user": "u1"}), Post(id="2", text="b")]
    with pytest.raises(ValueError, match=r"'column:event'.*data\.columns\.keep: \[event\].*row, source, user"):
        group_ids(posts, ["image", "column:event"])
    # present on some posts (even empty) is fine: the others have no key for it
    posts[0].meta["event"] = ""
    assert group_ids(posts, ["column:event"]).tolist() == [0, 1]


# ---------------------------------------------------------------------------------------------- text


def test_normalise_text_rules():
    assert normalise_text("RT @bob: Breaking news http://t.co/x") == "breaking news"
    assert normalise_text("breaking   NEWS!! https://t.co/y @alice") == "breaking news"
    assert normalise_text("RT @a: RT @b Fish &amp; chips #Friday www.x.org/p?q=1 :)") == "fish chips friday"
    assert normalise_text("Don\u2019t  STOP\u2026 believin'\n") == "dont stop believin"
    assert normalise_text("😂😂 🔥!!") == "" and normalise_text("") == ""
    assert normalise_text("ＦＵＬＬ width") == "full width"   # NFKC
    assert normalise_text("no rt @x: in the middle") == "no rt in the middle"


def test_near_duplicate_texts_group_and_short_ones_do_not():
    posts = [Post(id="1", text="RT @bob: Breaking news http://t.co/x"),
             Post(id="2", text="breaking   NEWS!! https://t.co/y @alice"),
             Post(id="3", text="Breaking views"),
             Post(id="4", text="😂😂😂"), Post(id="5", text="😂"),        # empty after normalising
             Post(id="6", text="lol ok"), Post(id="7", text="LOL ok!"),   # too short
             Post(id="8", text="thanks"), Post(id="9", text="Thanks!!"),  # one word
             Post(id="10", text="")]
    ids = group_ids(posts, ["text"])
    assert same_groups(ids, 0, 1)
    assert len(set(ids.tolist())) == len(posts) - 1
    assert group_keys(posts, ["text"])[3:] == [()] * 7


# ---------------------------------------------------------------------------------------------- keys


def test_image_key_prefers_the_kept_key_and_normalises_paths():
    assert image_key(Post(id="1", text="", images=["imgs/./a.jpg", "b.jpg"])) == os.path.join("imgs", "a.jpg")
    assert image_key(Post(id="2", text="", meta={IMAGE_KEY: "imgs/x/../a.jpg"})) == os.path.join("imgs", "a.jpg")
    assert image_key(Post(id="3", text="", images=["http://h/a/../b.jpg"])) == "http://h/a/../b.jpg"
    assert image_key(Post(id="4", text="")) is None
    masked = Post(id="5", text="", meta={IMAGE_KEY: "imgs/a.jpg", "image_masked": True})
    plain = Post(id="6", text="", images=["imgs/a.jpg"])
    assert same_groups(group_ids([masked, plain, Post(id="7", text="")], ["image"]), 0, 1)


def test_a_chain_of_keys_is_one_group_and_keyless_posts_are_alone():
    posts = [Post(id="A", text="", images=["x.jpg"]),
             Post(id="B", text="", images=["x.jpg"], meta={"event": "e1"}),
             Post(id="C", text="", meta={"event": "e1"}),
             Post(id="D", text="", meta={"event": "e2"}),
             Post(id="E", text=""), Post(id="F", text="", meta={"event": " "})]
    ids = group_ids(posts, ["image", "column:event"])
    assert ids.tolist() == [0, 0, 0, 1, 2, 3]                   # numbered in order of each group's first post
    assert group_ids(posts, ["image"]).tolist() == [0, 0, 1, 2, 3, 4]
    assert group_ids(posts, []).tolist() == [0, 1, 2, 3, 4, 5]
    assert group_keys(posts, ["image", "column:event"])[1] == ("image:x.jpg", "column:event=e1")


def test_components_are_connected_components():
    # a long chain (joined out of order) and a star, checked against a breadth-first search
    rnd = random.Random(0)
    n = 3000
    keys = [[] for _ in range(n)]
    for _ in range(2500):
        i, j = rnd.randrange(n), rnd.randrange(n)
        k = f"k{rnd.randrange(10**9)}"
        keys[i].append(k)
        keys[j].append(k)
    ids = components(keys)
    holders = {}
    for i, ks in enumerate(keys):
        for k in ks:
            holders.setdefault(k, []).append(i)
    seen, expected = set(), []
    for start in range(n):
        if start in seen:
            continue
        comp, todo = {start}, [start]
        while todo:
            i = todo.pop()
            for k in keys[i]:
                for j in holders[k]:
                    if j not in comp:
                        comp.add(j)
                        todo.append(j)
        seen |= comp
        expected.append(comp)
    assert len(set(ids.tolist())) == len(expected)
    for comp in expected:
        assert len({int(ids[i]) for i in comp}) == 1
    first = {}
    assert all(first.setdefault(g, g) == g for g in ids.tolist())    # numbers appear in increasing order
    assert ids.dtype == np.int64 and components([]).tolist() == []


# ---------------------------------------------------------------------------------------------- names


def test_group_names_are_readable_deterministic_and_order_independent():
    long_a = "the same rumour about the flood repeated word for word " * 3
    posts = [Post(id="1", text="x", images=["b.jpg"], meta={"event": "sydney"}),
             Post(id="2", text="y", images=["a.jpg"], meta={"event": "sydney"}),
             Post(id="3", text="z", images=["c.jpg"]),
             Post(id="4", text=""),
             Post(id="5", text=long_a), Post(id="6", text=long_a.upper()), Post(id="7", text=long_a + " and more")]
    by = ["image", "column:event", "text"]
    names = dict(zip([p.id for p in posts], group_names(posts, by)))
    assert names["1"] == names["2"] == "column:event=sydney"
    assert names["3"] == "image:c.jpg" and names["4"] == "post:4"
    assert names["5"] == names["6"] != names["7"]
    assert names["5"].startswith("text:the same rumour about the flood") and "…#" in names["5"]
    assert len(names["5"]) < 90
    shuffled = list(posts)
    random.Random(2).shuffle(shuffled)
    assert dict(zip([p.id for p in shuffled], group_names(shuffled, by))) == names


# ---------------------------------------------------------------------------------------------- describe


def test_describe_groups_counts():
    posts = [Post(id=str(i), text="", images=[f"{i // 3}.jpg"] if i < 9 else [], meta={"event": "e"} if i in (2, 3)
                  else {}) for i in range(12)]
    # images 0.jpg: 0,1,2  1.jpg: 3,4,5  2.jpg: 6,7,8; event e joins 2 and 3 → {0..5}, {6,7,8}, 9, 10, 11
    by = ["image", "column:event"]
    assert describe_groups(posts, by) == "grouped by image, column:event: 12 posts in 5 groups (largest 6 posts)"
    splits = {"train": posts[:6] + posts[9:10], "dev": posts[6:9], "test": posts[10:]}
    assert describe_groups(posts, by, splits) == ("grouped by image, column:event: 12 posts in 5 groups "
                                                  "(largest 6 posts); train 2 groups / dev 1 / test 2")
    leaky = {"train": posts[:3], "test": posts[3:]}
    assert describe_groups(posts, ["image"], leaky) == ("grouped by image: 12 posts in 6 groups (largest 3 posts); "
                                                        "train 1 group / test 5")
    assert describe_groups(posts, by, leaky).endswith("train 1 group / test 5; 1 group straddles splits")
    assert describe_groups(posts[9:], []) == "not grouped: 3 posts, each its own group"
    with pytest.raises(ValueError, match="post 'x' of split 'dev' is not among the posts"):
        describe_groups(posts, by, {"dev": [Post(id="x", text="")]})


# ---------------------------------------------------------------------------------------------- where keys are kept


def test_an_adapter_post_without_its_image_file_keeps_its_image_key(tmp_path):
    from mmpost.data.sources.common import attach_images

    folder = tmp_path / "imgs"
    folder.mkdir()
    (folder / "T1.jpg").write_bytes(b"x")
    posts = [Post(id="1", text="a"), Post(id="2", text="b")]
    attach_images(posts, folder, lambda p: f"T{p.id}.jpg")
    assert posts[0].images == [str(folder / "T1.jpg")] and posts[1].images == []
    assert [p.meta[IMAGE_KEY] for p in posts] == [str(folder / "T1.jpg"), str(folder / "T2.jpg")]
    attach_images(posts, None, lambda p: f"T{p.id}.jpg")
    assert [p.meta[IMAGE_KEY] for p in posts] == ["T1.jpg", "T2.jpg"] and posts[0].images == []
    twins = [Post(id="3", text="c"), Post(id="4", text="d")]
    attach_images(twins, folder, lambda p: "gone.jpg")
    assert same_groups(group_ids(twins, ["image"]), 0, 1)


def test_a_manifest_row_keeps_its_image_key_and_masking_keeps_it(tmp_path):
    from mmpost.data.manifest import ColumnMapping, load_manifest
    from mmpost.data.validate import apply_policy, validate_posts

    (tmp_path / "m.csv").write_text("id,text,image\n1,a,./x.jpg\n2,b,x.jpg\n3,c,\n4,d,http://h/y.jpg\n",
                                    encoding="utf-8")
    posts = load_manifest(tmp_path / "m.csv", ColumnMapping(image="image"))
    assert [p.meta.get(IMAGE_KEY) for p in posts] == [str(tmp_path / "x.jpg")] * 2 + [None, "http://h/y.jpg"]
    kept, counts = apply_policy(posts, validate_posts(posts), "text-only")
    assert counts["image_masked"] == 3 and [p.images for p in kept] == [[], [], [], []]
    assert [p.meta.get(IMAGE_KEY) for p in kept] == [p.meta.get(IMAGE_KEY) for p in posts]
    # a post made without a reader gets its key from the image the policy masks
    bare = [Post(id="9", text="t", images=[str(tmp_path / "nope.jpg")])]
    masked, _ = apply_policy(bare, validate_posts(bare), "text-only")
    assert masked[0].images == [] and masked[0].meta[IMAGE_KEY] == str(tmp_path / "nope.jpg")
    assert IMAGE_KEY not in bare[0].meta                          # input posts are not modified
