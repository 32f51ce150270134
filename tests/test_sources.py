"""Dataset adapters: exact counts on the real files (under MMPOST_DATA_ROOT; skipped without it) and, with no data
at all, the parsing, relabelling and error paths on small files written to tmp_path in each dataset's layout."""
from __future__ import annotations

import csv
import json
import os
from collections import Counter
from pathlib import Path

import pytest

from mmpost import registry
from mmpost.data.sources import SourceError, get_source, names
from mmpost.data.sources.common import attach_images, counts_note
from mmpost.data.sources.msd import parse_line
from mmpost.data.sources.tir import ITRP_TEST_START, controversial

ALL = ["memes", "mhp", "msd", "multioff", "mvsa-multiple", "mvsa-single", "tir"]
FOLDER = {"memes": "memes", "mhp": "mhp", "msd": "msd", "multioff": "multioff", "mvsa-multiple": "mvsa",
          "mvsa-single": "mvsa", "tir": "tir"}
LABEL_NAMES = {
    "sentiment": ["negative", "neutral", "positive"],
    "sarcasm": ["not_sarcastic", "sarcastic"],
    "text_represented": ["not_represented", "represented"],
    "image_adds": ["not_adds", "adds"],
    "relation": ["00", "01", "10", "11"],
    "hate": ["none", "hateful", "counter-speech", "reclaimed"],
    "offensive": ["non-offensive", "offensive"],
    "emoticon": [],          # twitter-emoticon: the label set comes from the data
}


# ------------------------------------------------------------------------------------------------ real data

_CACHE: dict = {}


@pytest.fixture(scope="module")
def root() -> Path:
    env = os.environ.get("MMPOST_DATA_ROOT")
    if not env:
        pytest.skip("MMPOST_DATA_ROOT not set: real-data tests skipped")
    path = Path(env)
    if not path.is_dir():
        pytest.skip(f"MMPOST_DATA_ROOT={env} is not a folder: real-data tests skipped")
    return path


def load(root: Path, name: str, **opts):
    """A dataset as loaded once per option set (tests only read the posts)."""
    if not (root / FOLDER[name]).is_dir():
        pytest.skip(f"{FOLDER[name]}/ is not under MMPOST_DATA_ROOT: {name} tests skipped")
    key = (name, tuple(sorted(opts.items())))
    if key not in _CACHE:
        _CACHE[key] = get_source(name).load(root, **opts)
    return _CACHE[key]


def by_split(posts):
    out: dict[str, list] = {"train": [], "dev": [], "test": []}
    for p in posts:
        out[p.meta["split"]].append(p)
    return out


def counts(posts, task):
    return Counter(p.labels[task] for p in posts if task in p.labels)


@pytest.mark.parametrize("name", ALL)
def test_every_adapter_gives_split_posts_with_known_labels(root, name):
    src = get_source(name)
    data = load(root, name)
    assert data.posts and data.notes
    assert any(n.startswith("images:") for n in data.notes)
    ids = [p.id for p in data.posts]
    assert len(set(ids)) == len(ids) and all(isinstance(i, str) and i for i in ids)
    for p in data.posts:
        assert p.meta["split"] in ("train", "dev", "test")
        assert isinstance(p.meta["source"], str) and not os.path.isabs(p.meta["source"])
        assert isinstance(p.meta["row"], int) and p.meta["row"] >= 1
        for task, label in p.labels.items():
            assert label in src.tasks[task]
        assert all(os.path.isfile(i) for i in p.images)
    for task, labels in src.tasks.items():
        assert labels == LABEL_NAMES[task]
    assert {p.meta["split"] for p in data.posts} == {"train", "dev", "test"}


def test_tir_itrp_split(root):
    posts = load(root, "tir").posts
    assert len(posts) == 4471
    s = by_split(posts)
    assert len(s["train"]) + len(s["dev"]) == 3576 and len(s["test"]) == 895
    assert all(p.meta["itrp_index"] >= ITRP_TEST_START for p in s["test"])   # file order, as ITRp
    assert counts(s["test"], "relation") == {"00": 289, "01": 239, "10": 190, "11": 177}
    assert abs(len(s["dev"]) - 358) <= 1
    # stratified: dev keeps the relation mix of the 3,576 train+dev rows
    pool = counts(s["train"] + s["dev"], "relation")
    dev = counts(s["dev"], "relation")
    for code in pool:
        assert abs(dev[code] / len(s["dev"]) - pool[code] / 3576) < 0.01
    # the two binary tasks are the relation's digits
    assert all(p.labels["relation"] == f"{int(p.labels['text_represented'] == 'represented')}"
               f"{int(p.labels['image_adds'] == 'adds')}" for p in posts)


def test_tir_backslash_escaped_quotes_stay_in_one_field(root):
    posts = load(root, "tir").posts
    quoted = [p for p in posts if '"' in p.text]
    assert len(quoted) == 186
    p = next(p for p in quoted if p.text.startswith("This is my "))
    assert p.text == 'This is my "I am so done with everything" face https://t.co/SzKzjNalqc'
    assert not any("\\" in p.text for p in quoted)


def test_tir_controversial_file(root):
    c = controversial(root)
    assert len(c) == 218
    assert c[3997] == ("01", "11") and c[3612] == ("11", "00") and c[3628] == ("00", "10")
    assert min(c) >= ITRP_TEST_START


def test_tir_test_rm_drops_the_controversial_rows(root):
    data = load(root, "tir", test="rm")
    s = by_split(data.posts)
    assert len(s["test"]) == 895 - 218 == 677
    assert len(s["train"]) + len(s["dev"]) == 3576
    gone = set(controversial(root))
    assert not any(p.meta["itrp_index"] in gone for p in data.posts)


def test_tir_test_rl_relabels_exactly_the_listed_rows(root):
    raw = {p.meta["itrp_index"]: p for p in load(root, "tir").posts}
    rl = {p.meta["itrp_index"]: p for p in load(root, "tir", test="rl").posts}
    c = controversial(root)
    assert raw.keys() == rl.keys()
    for i, p in rl.items():
        if i in c:
            before, after = c[i]
            assert raw[i].labels["relation"] == before and p.labels["relation"] == after
            assert p.meta["relabelled"] == f"{before}->{after}"
        else:
            assert p.labels == raw[i].labels and "relabelled" not in p.meta
    # by hand: row 3997 was 01 (text not represented, image adds) and becomes 11
    assert raw[3997].labels == {"text_represented": "not_represented", "image_adds": "adds", "relation": "01"}
    assert rl[3997].labels == {"text_represented": "represented", "image_adds": "adds", "relation": "11"}
    assert rl[3612].labels == {"text_represented": "not_represented", "image_adds": "not_adds", "relation": "00"}
    assert sum(p.labels != raw[i].labels for i, p in rl.items()) == 218


def test_tir_seed1_split(root):
    a = load(root, "tir", split="seed1").posts
    sizes = Counter(p.meta["split"] for p in a)
    assert sum(sizes.values()) == 4471
    for split, frac in (("train", 0.8), ("dev", 0.1), ("test", 0.1)):
        assert abs(sizes[split] - frac * 4471) <= 10
    again = get_source("tir").load(root, split="seed1")
    assert [p.meta["split"] for p in again.posts] == [p.meta["split"] for p in a]
    other = load(root, "tir", split="seed1", split_seed=1).posts
    assert [p.meta["split"] for p in other] != [p.meta["split"] for p in a]
    # test=rm with seed1 drops only the controversial rows that land in this test split
    rm = load(root, "tir", split="seed1", test="rm")
    c = set(controversial(root))
    in_test = {p.meta["itrp_index"] for p in a if p.meta["split"] == "test"} & c
    assert len(rm.posts) == 4471 - len(in_test)
    assert any("of the 218 listed rows are in this split's test" in n for n in rm.notes)


def test_mvsa_single(root):
    data = load(root, "mvsa-single")
    s = by_split(data.posts)
    assert [len(s[k]) for k in ("train", "dev", "test")] == [3611, 450, 450]
    assert counts(s["train"], "sentiment") == {"positive": 2147, "neutral": 376, "negative": 1088}
    assert counts(s["test"], "sentiment") == {"positive": 268, "neutral": 47, "negative": 135}
    assert any("inferred" in n for n in data.notes)
    assert not any(p.images for p in data.posts) and any("none available" in n for n in data.notes)
    samples = load(root, "mvsa-single", image_root="mvsa/MVSA-single/sample_images")
    assert {p.id for p in samples.posts if p.images} == {"32", "3712", "959", "1129"}   # the four shipped samples


def test_mvsa_multiple(root):
    s = by_split(load(root, "mvsa-multiple").posts)
    assert [len(s[k]) for k in ("train", "dev", "test")] == [13624, 1700, 1700]
    assert counts(s["train"], "sentiment") == {"positive": 9056, "neutral": 3528, "negative": 1040}


def test_mhp(root):
    posts = load(root, "mhp").posts
    assert len(posts) == 5000
    s = by_split(posts)
    assert [len(s[k]) for k in ("train", "dev", "test")] == [3998, 500, 502]
    assert counts(s["train"], "hate") == {"none": 2136, "hateful": 1480, "counter-speech": 90, "reclaimed": 292}
    assert all(len(p.id) == 19 and p.id.isdigit() for p in posts)
    # text = tweet + OCR text when there is one
    by_id = {p.id: p for p in posts}
    with open(root / "mhp/Final_Dog_Whistle_5k.converted.csv", encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    with_ocr = 0
    for r in rows:
        tweet, ocr = r["tweet_text"].strip(), r["img_text"].strip()
        assert by_id[r["Tweet ID"]].text == (f"{tweet} {ocr}" if ocr else tweet)
        with_ocr += bool(ocr)
    assert with_ocr == 2380
    assert "BUTTHURT REPORT" in by_id["1115260061952151552"].text


def test_msd_raw_and_filtered(root):
    raw = by_split(load(root, "msd", variant="raw").posts)
    assert [len(raw[k]) for k in ("train", "dev", "test")] == [29040, 2410, 2409]
    assert counts(raw["train"], "sarcasm") == {"sarcastic": 14256, "not_sarcastic": 14784}
    data = load(root, "msd")
    f = by_split(data.posts)
    assert [len(f[k]) for k in ("train", "dev", "test")] == [19816, 2410, 2409]
    assert counts(f["train"], "sarcasm")["sarcastic"] == 8642
    assert counts(f["dev"], "sarcasm")["sarcastic"] == 959
    assert counts(f["test"], "sarcasm")["sarcastic"] == 959
    assert any("variant filtered" in n and "train 9,224" in n for n in data.notes)


def test_msd_hashtag_label_and_attributes(root):
    data = load(root, "msd", label="hashtag", attributes=True)
    s = by_split(data.posts)
    assert counts(s["dev"], "sarcasm")["sarcastic"] == 1000
    assert counts(s["test"], "sarcasm")["sarcastic"] == 1005
    assert counts(s["train"], "sarcasm")["sarcastic"] == 8642          # train has one label either way
    assert all(" | image attributes: " in p.text and len(p.text.split(" | image attributes: ")[1].split()) >= 5
               for p in data.posts)
    assert any(n.startswith("attributes:") for n in data.notes)


def test_memes(root):
    data = load(root, "memes")
    posts = data.posts
    assert len(posts) == 1308 and all(p.images for p in posts)
    assert counts(posts, "sentiment") == {"negative": 559, "neutral": 445, "positive": 304}
    assert counts(posts, "offensive") == {"offensive": 634, "non-offensive": 674}
    assert counts(posts, "sarcasm") == {"sarcastic": 840, "not_sarcastic": 466}
    assert sorted(p.id for p in posts if "sarcasm" not in p.labels) == ["meme_72.png", "ramdev163.png"]
    assert any("713 of 2,021 rows" in n for n in data.notes)
    assert any("mmpost's" in n for n in data.notes)
    everything = load(root, "memes", with_images_only=False).posts
    assert len(everything) == 2021
    assert sorted(p.id for p in everything if "sarcasm" not in p.labels) == ["meme_72.png", "ramdev163.png"]
    assert sum(bool(p.images) for p in everything) == 1308
    sizes = Counter(p.meta["split"] for p in posts)
    assert abs(sizes["train"] - 0.8 * 1308) <= 5 and abs(sizes["test"] - 0.1 * 1308) <= 5


@pytest.mark.parametrize("images_only", [True, False])
def test_memes_never_leak_ground_truth_reality(root, images_only):
    for p in load(root, "memes", with_images_only=images_only).posts:
        assert "There is no offenisve content" not in p.text
        assert not any("There is no offenisve content" in str(v) for v in p.meta.values())
        assert "Ground truth reality" not in p.meta and "Level2" not in p.meta


def test_multioff(root):
    data = load(root, "multioff")
    s = by_split(data.posts)
    assert len(s["train"]) + len(s["dev"]) == 445 and len(s["test"]) == 149
    assert abs(len(s["dev"]) - 44.5) <= 1
    assert counts(s["test"], "offensive") == {"offensive": 58, "non-offensive": 91}
    assert sum(bool(p.images) for p in s["test"]) == 148
    assert not any(p.images for p in s["train"] + s["dev"])
    assert "KbTk7Rq.png" in {p.id for p in s["test"] if not p.images}
    assert any("images: 148 of 594 posts" in n for n in data.notes)


# -------------------------------------------------------------------------------------- no data needed


def test_registry_and_options():
    assert sorted(names()) == sorted([*ALL, "twitter-emoticon"])     # its data is not under the data root here
    for name in names():
        src = get_source(name)
        assert src.name == name and registry.get("dataset", name) is type(src)
        assert set(src.tasks) <= set(LABEL_NAMES)
    with pytest.raises(ValueError, match=r"no option 'splitt'.*split \(default 'itrp'\).*test \(default 'raw'\)"):
        get_source("tir").load(Path("nowhere"), splitt="seed1")
    with pytest.raises(ValueError, match="test='removed' must be one of raw, rm, rl"):
        get_source("tir").load(Path("nowhere"), test="removed")
    with pytest.raises(ValueError, match="with_images_only='maybe' must be true or false"):
        get_source("memes").load(Path("nowhere"), with_images_only="maybe")
    with pytest.raises(ValueError, match="has no option 'split'.*its options: none"):
        get_source("mhp").load(Path("nowhere"), split="x")


def test_missing_file_names_where_it_was_expected(tmp_path):
    with pytest.raises(SourceError, match=r"textimage-data\.csv: file not found"):
        get_source("tir").load(tmp_path)


def test_msd_line_parser(tmp_path):
    assert parse_line("['1', 'a , b', 0, 1]\r", "f.txt", 3) == ["1", "a , b", 0, 1]
    with pytest.raises(SourceError, match=r"f\.txt: line 7: expected a list, got dict"):
        parse_line("{'a': 1}", "f.txt", 7)
    with pytest.raises(SourceError, match=r"f\.txt: line 2: not a Python list literal"):
        parse_line("__import__('os').system('echo hi')", "f.txt", 2)   # never run: literals only


def write_msd(folder: Path, train: list[str], valid: list[str] | None = None, test: list[str] | None = None):
    (folder / "msd/text").mkdir(parents=True)
    for name, lines in (("train.txt", train), ("valid2.txt", valid or ["['9', 'ok', 0, 0]"]),
                        ("test2.txt", test or ["['8', 'fine', 1, 1]"])):
        (folder / "msd/text" / name).write_bytes("\r\n".join(lines).encode() + b"\r\n")


def test_msd_small_files_filter_and_errors(tmp_path):
    write_msd(tmp_path, ["['1', 'what a joke', 1]", "['2', 'lovely day', 0]", "['3', 'jokester', 1]"],
              valid=["['4', 'x', 1, 0]"], test=["['5', 'y', 0, 1]"])
    data = get_source("msd").load(tmp_path)
    assert [p.id for p in data.posts] == ["2", "3", "4", "5"]          # "joke" is a token of 1 only
    assert [p.labels["sarcasm"] for p in data.posts] == ["not_sarcastic", "sarcastic", "not_sarcastic",
                                                            "sarcastic"]
    hashtag = get_source("msd").load(tmp_path, label="hashtag", variant="raw")
    assert [p.labels["sarcasm"] for p in hashtag.posts] == ["sarcastic", "not_sarcastic", "sarcastic",
                                                             "sarcastic", "not_sarcastic"]
    assert {k: v for k, v in data.posts[0].meta.items() if k != "image_key"} == \
        {"source": "msd/text/train.txt", "row": 2, "split": "train"}
    assert data.posts[0].meta["image_key"].endswith("2.jpg")

    bad = tmp_path / "bad"
    write_msd(bad, ["['1', 'fine', 1]", "not a list at all"])
    with pytest.raises(SourceError, match=r"train\.txt: line 2: not a Python list literal"):
        get_source("msd").load(bad)
    shape = tmp_path / "shape"
    write_msd(shape, ["['1', 'fine', 1]"], valid=["['2', 'no human label', 1]"])
    with pytest.raises(SourceError, match=r"valid2\.txt: line 1: expected \[id, text, hashtag_label, human_label\]"):
        get_source("msd").load(shape)
    label = tmp_path / "label"
    write_msd(label, ["['1', 'fine', 2]"])
    with pytest.raises(SourceError, match=r"train\.txt: line 1, field 'label': expected 0 or 1, got 2"):
        get_source("msd").load(label)


def write_tir(folder: Path, n: int, code=lambda i: f"{i % 4:02b}", controversial_lines: str | None = None,
              extra: dict[int, dict[str, str]] | None = None) -> Path:
    """A textimage-data.csv in the real layout: every field quoted, quotes in tweets backslash-escaped."""
    (folder / "tir").mkdir(parents=True, exist_ok=True)
    path = folder / "tir/textimage-data.csv"
    cols = ["tweet_id", "user_id", "tweet", "text_is_represented", "image_adds", "image_adds_text_repr",
            "image_adds_text_notrepr", "image_notadds_text_repr", "image_notadds_text_notrepr"]
    with open(path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f, quoting=csv.QUOTE_ALL, doublequote=False, escapechar="\\", lineterminator="\n")
        w.writerow(cols)
        for i in range(n):
            c = code(i)
            onehot = [int(c == "11"), int(c == "01"), int(c == "10"), int(c == "00")]
            row = {"tweet_id": str(10**17 + i), "user_id": "7", "tweet": f'tweet {i} says "hi", ok',
                   "text_is_represented": c[0], "image_adds": c[1],
                   **dict(zip(cols[5:], map(str, onehot)))}
            row.update((extra or {}).get(i, {}))
            w.writerow([row[k] for k in cols])
    if controversial_lines is not None:
        (folder / "tir/controversial_samples.txt").write_text(controversial_lines)
    return path


def test_tir_small_file_rm_and_rl(tmp_path):
    n = ITRP_TEST_START + 24
    write_tir(tmp_path, n, controversial_lines="01->11: 3577, 3581\n\n00->10: 3580\n")
    assert (tmp_path / "tir/textimage-data.csv").read_text().count('\\"hi\\"') == n
    assert controversial(tmp_path) == {3577: ("01", "11"), 3581: ("01", "11"), 3580: ("00", "10")}
    raw = get_source("tir").load(tmp_path)
    assert raw.posts[0].text == 'tweet 0 says "hi", ok'
    assert sum(p.meta["split"] == "test" for p in raw.posts) == 24
    rm = get_source("tir").load(tmp_path, test="rm")
    assert len(rm.posts) == n - 3 and {3577, 3580, 3581}.isdisjoint(p.meta["itrp_index"] for p in rm.posts)
    rl = {p.meta["itrp_index"]: p for p in get_source("tir").load(tmp_path, test="rl").posts}
    assert rl[3577].labels == {"text_represented": "represented", "image_adds": "adds", "relation": "11"}
    assert rl[3580].labels == {"text_represented": "represented", "image_adds": "not_adds", "relation": "10"}
    assert rl[3578].labels["relation"] == "10" and "relabelled" not in rl[3578].meta


def test_tir_small_file_errors(tmp_path):
    write_tir(tmp_path, ITRP_TEST_START + 4, controversial_lines="11->00: 3578\n")
    with pytest.raises(SourceError, match=r"row 3578 .* listed as 11->00 but its code .* is 10"):
        get_source("tir").load(tmp_path, test="rl")
    (tmp_path / "tir/controversial_samples.txt").write_text("01->11: 3577\n01 to 11: 5\n")
    with pytest.raises(SourceError, match=r"controversial_samples\.txt: line 2: expected 'BEFORE->AFTER"):
        get_source("tir").load(tmp_path, test="rm")

    seven = tmp_path / "seven"
    write_tir(seven, 10, extra={4: {"image_adds": "7"}})
    with pytest.raises(SourceError, match=r"textimage-data\.csv: row 5 \(line 6\), field 'image_adds': "
                                          r"unknown value '7'"):
        get_source("tir").load(seven, split="seed1")
    short = tmp_path / "short"
    write_tir(short, 10)
    with pytest.raises(SourceError, match=r"split=itrp needs more than 3576 rows"):
        get_source("tir").load(short)
    # a tweet whose quotes are doubled ("") instead of backslash-escaped: one field too many on that row
    doubled = tmp_path / "doubled"
    path = write_tir(doubled, 6)
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace('\\"hi\\"', '""hi""')
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(SourceError, match=r"row 3 \(line 4\) has 10 fields but the header has 9"):
        get_source("tir").load(doubled, split="seed1")


def test_other_adapters_name_file_row_and_field(tmp_path):
    mvsa = tmp_path / "mvsa/MVSA-multiple/10-flod-1"
    mvsa.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        label = 5 if split == "dev" else 0
        (mvsa / f"{split}.json").write_text(json.dumps([{"id": f"{split}1", "text": "t", "emotion_label": 0},
                                                        {"id": f"{split}2", "text": "t", "emotion_label": label}]))
    with pytest.raises(SourceError, match=r"dev\.json: item 2 \(id dev2\), field 'emotion_label': 5 is not"):
        get_source("mvsa-multiple").load(tmp_path)

    (tmp_path / "memes").mkdir()
    (tmp_path / "memes/sample_data.csv").write_bytes(
        b"Name,Text,Ground truth reality,Level1,Level2,Valence,Sarcasm\r\n"
        b"a.png,hi,There is no offenisve content,non-off,non-off,positive,sarcasm\r\n"
        b"b.png,yo,x,off,explicit,happy,\r\n")
    with pytest.raises(SourceError, match=r"sample_data\.csv: row 2 \(line 3\), field 'Valence': unknown value "
                                          r"'happy'"):
        get_source("memes").load(tmp_path, with_images_only=False)

    (tmp_path / "mhp").mkdir()
    (tmp_path / "mhp/Final_Dog_Whistle_5k.converted.csv").write_text(
        "Tweet ID,tweet_text,img_text,Primary_string_gt,Primary_numeric_gt\n"
        "1115260061952151552,a tweet,SOME OCR,hateful,1\n"
        "1057754597761183744,b tweet,,none,0\n")
    (tmp_path / "mhp/DataSplits.csv").write_text(",Train IDs,Dev IDs,Test IDs\n"
                                                 "0,1115260061952151552.0,1057754597761183744,\n")
    posts = get_source("mhp").load(tmp_path).posts
    assert [(p.id, p.text, p.meta["split"]) for p in posts] == [
        ("1115260061952151552", "a tweet SOME OCR", "train"), ("1057754597761183744", "b tweet", "dev")]
    (tmp_path / "mhp/DataSplits.csv").write_text(",Train IDs,Dev IDs,Test IDs\n"
                                                 "0,1115260061952151552,1057754597761183744,1.06E+18\n")
    with pytest.raises(SourceError, match=r"DataSplits\.csv: row 1 \(line 2\), field 'Test IDs': '1.06E\+18' "
                                          r"is not a tweet"):
        get_source("mhp").load(tmp_path)
    (tmp_path / "mhp/DataSplits.csv").write_text(",Train IDs,Dev IDs,Test IDs\n0,1115260061952151552,,\n")
    with pytest.raises(SourceError, match=r"converted\.csv: row 2: tweet 1057754597761183744 is in no split"):
        get_source("mhp").load(tmp_path)

    split = tmp_path / "multioff/Split Dataset"
    split.mkdir(parents=True)
    (split / "Training_meme_dataset.csv").write_bytes(b"image_name,sentence,label\r\na.png,x,offensive\r\n")
    (split / "Validation_meme_dataset.csv").write_bytes(b"image_name,sentence,label\r\nb.png,y,rude\r\n")
    with pytest.raises(SourceError, match=r"Validation_meme_dataset\.csv: row 1 \(line 2\), field 'label': "
                                          r"unknown value 'rude'"):
        get_source("multioff").load(tmp_path)


def test_images_are_attached_where_the_file_exists(tmp_path):
    from mmpost.data.post import Post
    (tmp_path / "imgs").mkdir()
    (tmp_path / "imgs/T1.jpg").write_bytes(b"x")
    posts = [Post(id="1", text="a"), Post(id="2", text="b", images=["stale.jpg"])]
    note = attach_images(posts, tmp_path / "imgs", lambda p: f"T{p.id}.jpg")
    assert posts[0].images == [str(tmp_path / "imgs/T1.jpg")] and posts[1].images == []
    assert note.startswith("images: 1 of 2 posts have an image file under") and "masked" in note
    assert "none available" in attach_images(posts, None, lambda p: p.id) and posts[0].images == []
    n = ITRP_TEST_START + 4
    write_tir(tmp_path, n)
    data = get_source("tir").load(tmp_path, image_root=tmp_path / "imgs")
    assert [p.id for p in data.posts if p.images] == []         # ids are 10**17 + i, not 1
    (tmp_path / f"imgs/T{10**17 + 2}.jpg").write_bytes(b"x")
    data = get_source("tir").load(tmp_path, image_root=tmp_path / "imgs")
    assert [p.id for p in data.posts if p.images] == [str(10**17 + 2)]
    assert any(f"images: 1 of {n:,} posts" in note for note in data.notes)
    with pytest.raises(SourceError, match="image root for dataset 'tir' is not a folder"):
        get_source("tir").load(tmp_path, image_root=tmp_path / "nope")
    assert counts_note(data.posts, "relation", ["00", "01", "10", "11"]).startswith("counts: train ")


def test_tir_test_variants_are_scored_by_relate(root):
    """`mmpost relate` on TIR scores test, test_RM and test_RL: the variants come from the adapter's options."""
    from mmpost.apps.relate import test_variants
    from mmpost.config import load_config

    if not (root / FOLDER["tir"]).is_dir():
        pytest.skip("tir/ is not under MMPOST_DATA_ROOT")
    cfg = load_config(None, ["data.source=tir", f"data.data_root={root}", "progress=false"])
    variants = test_variants(cfg, "text_represented", ["not_represented", "represented"])
    assert sorted(variants) == ["test_RL", "test_RM"]
    assert len(variants["test_RM"]) == 677 and len(variants["test_RL"]) == 895
    raw = {p.id: p.labels["text_represented"] for p in by_split(load(root, "tir").posts)["test"]}
    changed = sum(raw[p.id] != p.labels["text_represented"] for p in variants["test_RL"])
    assert 0 < changed <= 218
