"""Emoji extraction (``mmpost.data.emoji``): Unicode edge cases, label sets, the multi-emoji policy, leak removal, the
report; the synthetic set's emoji posts; and the Multimodal-TwitterEmoticon adapter on a small file in its layout."""
from __future__ import annotations

import pytest

from mmpost.data.emoji import emoji_in, emoji_name, emoticon_task, find_emoji, glyph, remove_emoji
from mmpost.data.post import Post
from mmpost.data.sources import SourceError, get_source

FAMILY = "\U0001F468\u200d\U0001F469\u200d\U0001F467\u200d\U0001F466"        # 👨‍👩‍👧‍👦 (ZWJ sequence)
RAINBOW = "\U0001F3F3\ufe0f\u200d\U0001F308"                                # 🏳️‍🌈
JAPAN, USA = "\U0001F1EF\U0001F1F5", "\U0001F1FA\U0001F1F8"                  # 🇯🇵 🇺🇸 (regional indicator pairs)
SCOTLAND = "\U0001F3F4\U000E0067\U000E0062\U000E0073\U000E0063\U000E0074\U000E007F"   # 🏴󠁧󠁢󠁳󠁣󠁴󠁿 (tag sequence)
THUMBS, MEDIUM, DARK = "\U0001F44D", "\U0001F3FD", "\U0001F3FF"               # 👍 🏽 🏿
KEYCAP_1, KEYCAP_1_BARE = "1\ufe0f\u20e3", "1\u20e3"                          # 1️⃣ and 1⃣ (no VS16)
HEART, HEART_BARE, HEART_TEXT = "\u2764\ufe0f", "\u2764", "\u2764\ufe0e"     # ❤️ ❤ ❤︎ (VS16, none, VS15)
JOY, SOB = "\U0001F602", "\U0001F62D"                                        # 😂 😭
TECHNOLOGIST_TONED = "\U0001F469\U0001F3FD\u200d\U0001F4BB"                  # 👩🏽‍💻


def names(text: str, **kw) -> list[str]:
    return [e.name for e in emoji_in(text, **kw)]


def test_zwj_sequences_flags_and_tag_flags_are_one_emoji_each():
    assert names(f"us {FAMILY} and {RAINBOW}") == ["family_man_woman_girl_boy", "rainbow_flag"]
    assert names(f"{JAPAN}{USA}") == ["Japan", "United_States"]      # paired left to right, never 🇵🇺
    assert names(f"go {SCOTLAND}!") == ["Scotland"]
    e = find_emoji(f"x {FAMILY} y")[0]
    assert (e.start, e.end, e.written) == (2, 2 + len(FAMILY), FAMILY)


def test_skin_tones_fold_into_the_base_emoji_unless_kept():
    assert names(f"{THUMBS}{MEDIUM} {THUMBS}{DARK} {THUMBS}") == ["thumbs_up"] * 3
    assert names(f"{THUMBS}{MEDIUM} {THUMBS}", skin_tones="keep") == ["thumbs_up_medium_skin_tone", "thumbs_up"]
    assert names(TECHNOLOGIST_TONED) == ["woman_technologist"]           # a tone inside a ZWJ sequence
    # a modifier after an emoji that takes none belongs to that emoji's span and is not an emoji of its own
    stray = find_emoji(f"{JOY}{MEDIUM} ok")
    assert [e.name for e in stray] == ["face_with_tears_of_joy"] and stray[0].end == 2


def test_keycaps_keep_their_digit_with_or_without_vs16():
    assert names(f"{KEYCAP_1} and {KEYCAP_1_BARE}") == ["keycap_1", "keycap_1"]
    assert names("plain 1 and # are not emoji") == []
    assert glyph("keycap_1") == KEYCAP_1


def test_variation_selectors():
    # VS16 or none: the same class; VS15 asks for the text look, so it is not counted
    assert names(f"{HEART} {HEART_BARE} {HEART_TEXT}") == ["red_heart", "red_heart"]
    assert [e.presentation for e in find_emoji(f"{HEART} {HEART_BARE} {HEART_TEXT}")] == \
        ["emoji", "text-default", "text"]
    # bare text-default symbols count unless text_symbols=False; an emoji-default one always counts
    assert names(f"Brand\u2122 {HEART_BARE} {JOY}", text_symbols=False) == ["face_with_tears_of_joy"]
    assert names(f"Brand\u2122 {HEART_BARE}") == ["trade_mark", "red_heart"]
    # a superfluous VS16 after an emoji is part of its span, so removing it leaves no stray selector
    text = f"so funny {JOY}\ufe0f"
    assert remove_emoji(text, find_emoji(text)) == "so funny"


def test_text_without_emoji_and_several_emoji():
    assert find_emoji("no emoji here :) <3 ;-)") == []
    assert names(f"{JOY}{JOY} wow {SOB} {HEART}") == ["face_with_tears_of_joy"] * 2 + ["loudly_crying_face",
                                                                                       "red_heart"]


def test_emoji_name_accepts_glyphs_names_and_code_points():
    assert emoji_name(HEART) == emoji_name(HEART_BARE) == emoji_name(":red_heart:") == "red_heart"
    assert emoji_name("U+1F602") == emoji_name("1f602") == emoji_name(JOY) == emoji_name(":joy:") == \
        "face_with_tears_of_joy"
    assert emoji_name(f"{THUMBS}{DARK}") == "thumbs_up"
    assert emoji_name("thumbs_up_dark_skin_tone", skin_tones="keep") == "thumbs_up_dark_skin_tone"
    for bad in ("cafe", "hello", f"{JOY}{SOB}", ""):
        with pytest.raises(ValueError):
            emoji_name(bad)
    assert glyph("red_heart") == HEART and glyph("not_an_emoji") == "not_an_emoji"


def _posts(texts: list[str]) -> list[Post]:
    return [Post(id=str(i), text=t, meta={"split": "train", "source": "posts.csv", "row": i + 1})
            for i, t in enumerate(texts)]


def test_label_set_is_the_top_k_by_posts_and_ties_go_by_name():
    texts = [f"a {JOY}{JOY}{JOY}", f"b {JOY}", f"c {SOB}", f"d {SOB}", f"e {HEART}", "f nothing"]
    task = emoticon_task(_posts(texts), top_k=2)
    # each post counts an emoji once: joy 2 posts, sob 2 posts, heart 1 → the tie joy/sob is ordered by name
    assert task.labels == ["face_with_tears_of_joy", "loudly_crying_face"]
    assert [p.id for p in task.posts] == ["0", "1", "2", "3"]
    r = task.report
    assert (r.posts, r.with_emoji, r.kept) == (6, 5, 4)
    assert r.dropped["no emoji in the text"] == 1 and r.dropped["no emoji of the label set"] == 1
    assert r.counts["face_with_tears_of_joy"] == {"all": 2, "train": 2}
    assert "| face_with_tears_of_joy | \U0001F602 | 2 | 2 | 50.0% |" in r.markdown()
    assert any("1 posts dropped: no emoji in the text" in line for line in r.lines())
    task.posts[0].meta["split"] = "test"                      # split again: the report counts the posts as they are
    r.recount(task.posts)
    assert r.counts["face_with_tears_of_joy"] == {"all": 2, "train": 1, "test": 1} and r.kept == 4
    assert emoticon_task(_posts(texts), top_k=None).labels[-1] == "red_heart"
    with pytest.raises(ValueError, match="none of the 2 posts has an emoji"):
        emoticon_task(_posts(["plain", "text"]))
    with pytest.raises(ValueError, match="multi must be one of first, last, most, single"):
        emoticon_task(_posts(texts), multi="any")


def test_multi_emoji_policies():
    texts = [f"one {SOB} two {JOY}{JOY} three {HEART}", f"only {JOY}"]
    label = lambda multi: [p.labels["emoticon"] for p in emoticon_task(_posts(texts), top_k=None,  # noqa: E731
                                                                       multi=multi).posts]
    assert label("first") == ["loudly_crying_face", "face_with_tears_of_joy"]
    assert label("last") == ["red_heart", "face_with_tears_of_joy"]
    assert label("most") == ["face_with_tears_of_joy", "face_with_tears_of_joy"]
    single = emoticon_task(_posts(texts), top_k=None, multi="single")
    assert [p.id for p in single.posts] == ["1"]
    assert single.report.dropped["several distinct emoji (multi=single)"] == 1
    # with a label set that leaves out the first emoji, "first" takes the first one inside the set
    fixed = emoticon_task(_posts(texts), labels=[JOY, "red_heart"])
    assert fixed.labels == ["face_with_tears_of_joy", "red_heart"]
    assert [p.labels["emoticon"] for p in fixed.posts] == ["face_with_tears_of_joy", "face_with_tears_of_joy"]


def test_leak_removal_takes_every_form_of_the_label_emoji():
    text = f"{HEART} love it {HEART_BARE}{HEART_TEXT} so much {JOY} {HEART}{HEART}"
    p = emoticon_task(_posts([text]), labels=["red_heart"]).posts[0]
    assert p.labels["emoticon"] == "red_heart"
    assert p.text == f"love it so much {JOY}"                # other emoji stay (strip=label) ...
    assert "\u2764" not in p.text and "\ufe0e" not in p.text and "\ufe0f" not in p.text
    assert p.meta["text_with_emoji"] == text and p.meta["source"] == "posts.csv"
    q = emoticon_task(_posts([text]), labels=["red_heart"], strip="all").posts[0]
    assert q.text == "love it so much"                        # ... or go too (strip=all)
    toned = emoticon_task(_posts([f"nice {THUMBS}{DARK} work {THUMBS}"]), top_k=1).posts[0]
    assert (toned.text, toned.labels["emoticon"]) == ("nice work", "thumbs_up")
    zwj = emoticon_task(_posts([f"{FAMILY} day out {JAPAN}"]), labels=[FAMILY]).posts[0]
    assert zwj.text == f"day out {JAPAN}" and "\u200d" not in zwj.text
    keycap = emoticon_task(_posts([f"number {KEYCAP_1} again"]), top_k=1).posts[0]
    assert keycap.text == "number again"                     # the digit goes with its keycap
    # a post that is only its emoji has nothing left to read: dropped and counted
    empty = emoticon_task(_posts([f"{JOY}{JOY}", f"ha {JOY}"]), top_k=1)
    assert [p.id for p in empty.posts] == ["1"]
    assert empty.report.dropped["no text left after removing the emoji"] == 1


def test_a_label_the_post_already_has_is_normalised_and_removed_from_its_text():
    posts = [Post(id="a", text=f"sunset {HEART_BARE}", labels={"emoticon": HEART}),
             Post(id="b", text="no emoji in the text", labels={"emoticon": ":face_with_tears_of_joy:"}),
             Post(id="c", text=f"the text says {SOB}", labels={"emoticon": "U+1F602"})]
    task = emoticon_task(posts, top_k=None)
    got = {p.id: (p.text, p.labels["emoticon"]) for p in task.posts}
    assert got == {"a": ("sunset", "red_heart"), "b": ("no emoji in the text", "face_with_tears_of_joy"),
                   "c": (f"the text says {SOB}", "face_with_tears_of_joy")}
    bad = [Post(id="z", text="x", labels={"emoticon": "smile please"}, meta={"source": "d.csv", "row": 4})]
    with pytest.raises(ValueError, match=r"d\.csv: row 4 \(post z\), field 'emoticon'"):
        emoticon_task(bad)


def test_synthetic_emoji_posts_give_back_their_label_and_their_original_text(tmp_path):
    from mmpost.data.synthetic import EMOTICON_LABELS, emoticon_for, generate_emoticon_posts, generate_posts
    base = generate_posts(tmp_path, n=160, size=16, seed=0)
    emo = generate_emoticon_posts(tmp_path, n=160, size=16, seed=0)
    assert [p.text for p in generate_posts(tmp_path, n=160, size=16, seed=0)] == [p.text for p in base]
    assert all(e.text != b.text and e.images == b.images and e.labels == b.labels for e, b in zip(emo, base))
    placed = [emoji_in(p.text) for p in emo]
    assert all(len({e.name for e in found}) == 1 for found in placed)     # one emoji per post, maybe repeated
    assert any(found[0].start == 0 for found in placed) and any(len(found) > 1 for found in placed)
    task = emoticon_task(emo, top_k=len(EMOTICON_LABELS))
    assert sorted(task.labels) == sorted(EMOTICON_LABELS) and len(task.posts) == 160
    for p, b in zip(task.posts, base):
        assert p.text == b.text
        assert p.labels["emoticon"] == p.meta["emoticon"] == emoticon_for(b.meta["text_sentiment"],
                                                                          b.meta["image_sentiment"])
    # ☺ is written with and without VS16 and still makes one class
    smiling = [p.meta["text_with_emoji"] for p in task.posts if p.labels["emoticon"] == "smiling_face"]
    assert any("\u263a\ufe0f" in t for t in smiling) and any("\u263a\ufe0f" not in t for t in smiling)


# ------------------------------------------------------------------------------------- twitter-emoticon adapter


def _layout(root, rows: list[str], header: str = "tweet_id,text,image,emoticon") -> None:
    folder = root / "twitter-emoticon"
    (folder / "images").mkdir(parents=True, exist_ok=True)
    for name in ("1.jpg", "2.jpg"):
        (folder / "images" / name).write_bytes(b"not read by the adapter")
    (folder / "data.csv").write_text("\n".join([header, *rows]) + "\n", encoding="utf-8")


def test_twitter_emoticon_adapter_reads_the_layout(tmp_path):
    rows = [f"{i},tweet number {i} {JOY if i % 2 else ''},{i}.jpg,{JOY if i % 2 else SOB}" for i in range(1, 21)]
    rows[2] = f"3,my heart {HEART_BARE},3.jpg,{HEART}"
    rows[3] = "4,no label here,4.jpg,"
    _layout(tmp_path, rows)
    data = get_source("twitter-emoticon").load(tmp_path)
    posts = {p.id: p for p in data.posts}
    assert len(posts) == 20
    assert posts["1"].labels == {"emoticon": "face_with_tears_of_joy"} and posts["2"].labels["emoticon"] == \
        "loudly_crying_face"
    assert posts["3"].labels["emoticon"] == "red_heart" and posts["4"].labels == {}
    assert posts["1"].images and posts["1"].images[0].endswith("1.jpg") and not posts["5"].images
    assert posts["1"].meta["row"] == 1 and posts["1"].meta["source"] == "twitter-emoticon/data.csv"
    assert {p.meta["split"] for p in data.posts} == {"train", "dev", "test"}
    assert any("images: 2 of 20 posts" in n for n in data.notes)
    assert any(n.startswith("texts: 10 of 20 still hold their label emoji") for n in data.notes)
    task = emoticon_task(data.posts, top_k=None)
    assert posts["3"].text == f"my heart {HEART_BARE}"           # the adapter keeps the text as written ...
    assert {p.id: p.text for p in task.posts}["3"] == "my heart"  # ... the task removes the label emoji


def test_twitter_emoticon_adapter_split_column_and_errors(tmp_path):
    _layout(tmp_path, [f"1,a,1.jpg,{JOY},train", f"2,b,2.jpg,{SOB},validation", f"3,c,3.jpg,{JOY},test"],
            header="id,tweet,image_name,emoji,split")
    assert [p.meta["split"] for p in get_source("twitter-emoticon").load(tmp_path).posts] == ["train", "dev", "test"]
    _layout(tmp_path, ["1,a,1.jpg,big grin"])
    with pytest.raises(SourceError, match=r"data\.csv: row 1 \(line 2\), field 'emoticon': 'big grin' is not an emoji"):
        get_source("twitter-emoticon").load(tmp_path)
    _layout(tmp_path, [f"1,a,1.jpg,{JOY}", f"1,b,2.jpg,{JOY}"])
    with pytest.raises(SourceError, match=r"row 2 \(line 3\), field 'tweet_id': id 1 already on row 1"):
        get_source("twitter-emoticon").load(tmp_path)
    _layout(tmp_path, ["1,a,1.jpg"], header="id,text,image")
    with pytest.raises(SourceError, match="no column for label"):
        get_source("twitter-emoticon").load(tmp_path)
    _layout(tmp_path, [f"1,a,1.jpg,{JOY},holdout"], header="id,text,image,emoticon,split")
    with pytest.raises(SourceError, match="unknown split 'holdout'"):
        get_source("twitter-emoticon").load(tmp_path)
