import json
import os

import pytest

from mmpost.data.manifest import (
    ColumnMapping,
    ManifestError,
    load_manifest,
    load_posts_jsonl,
    save_posts_jsonl,
)
from mmpost.data.post import Post


def write(path, text, encoding="utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


CSV = (
    "id,text,image,sentiment,split,lang\n"
    "1,hello world,a.jpg,positive,train,en\n"
    "2,  padded  ,,negative,val,en\n"
    "3,no label,c.jpg,,test,hi\n"
)


def test_csv_import_with_mapping(tmp_path):
    p = write(tmp_path / "posts.csv", CSV)
    m = ColumnMapping(image="image", image_root=str(tmp_path / "imgs"), labels={"sentiment": "sentiment"},
                      split="split", keep=["lang"])
    posts = load_manifest(p, m)
    assert [x.id for x in posts] == ["1", "2", "3"]
    a, b, c = posts
    assert a.text == "hello world"
    assert a.images == [os.path.join(str(tmp_path / "imgs"), "a.jpg")]
    assert a.labels == {"sentiment": "positive"}
    assert a.meta == {"source": str(p), "row": 1, "split": "train", "lang": "en",
                      "image_key": os.path.join(str(tmp_path / "imgs"), "a.jpg")}
    assert b.text == "padded" and b.images == [] and b.meta["split"] == "dev"  # "val" → "dev"
    assert c.labels == {} and c.meta["row"] == 3  # empty label is absent, not "nan"
    assert all(isinstance(x, Post) for x in posts)


def test_long_ids_and_leading_zeros_stay_strings(tmp_path):
    p = write(tmp_path / "t.csv", "tweet_id,tweet\n698197155698184192,a\n000123,b\n1e5,c\n")
    posts = load_manifest(p, ColumnMapping(id="tweet_id", text="tweet"))
    assert [x.id for x in posts] == ["698197155698184192", "000123", "1e5"]


def test_text_columns_are_joined_skipping_empty_parts(tmp_path):
    p = write(tmp_path / "t.csv", "id,title,body,ocr\n1,Title,Body,\n2,,only body,  \n3,,,\n")
    posts = load_manifest(p, ColumnMapping(text=["title", "body", "ocr"]))
    assert [x.text for x in posts] == ["Title Body", "only body", ""]


def test_label_values_map_raw_values(tmp_path):
    p = write(tmp_path / "t.csv", "id,text,y\n1,a,0\n2,b,1\n3,c, 2 \n4,d,\n")
    m = ColumnMapping(labels={"sarcasm": "y"}, label_values={"sarcasm": {"0": "no", "1": "yes"}})
    posts = load_manifest(p, m)
    assert [x.labels.get("sarcasm") for x in posts] == ["no", "yes", "2", None]  # unmapped stays for validation


def test_multi_image_cells_and_image_pattern(tmp_path):
    p = write(tmp_path / "t.csv",
              'id,text,media\n'
              '1,two images,"111; 222"\n'
              '2,json list,"[""333"", ""444""]"\n'
              '3,none,\n'
              '4,one,555\n')
    m = ColumnMapping(image="media", image_sep=";", image_pattern="T{}.jpg", image_root="media_dir")
    posts = load_manifest(p, m)
    j = lambda n: os.path.join("media_dir", n)  # noqa: E731
    assert posts[0].images == [j("T111.jpg"), j("T222.jpg")]
    assert posts[1].images == [j("T333.jpg"), j("T444.jpg")]
    assert posts[2].images == [] and not posts[2].has_image
    assert posts[3].images == [j("T555.jpg")]


def test_image_id_column_with_pattern_into_folder(tmp_path):
    # the layout of many tweet sets: no image column, the tweet id names the file
    p = write(tmp_path / "t.csv", "tweet_id,tweet\n698197155698184192,a\n")
    m = ColumnMapping(id="tweet_id", text="tweet", image="tweet_id", image_pattern="T{}.jpg",
                      image_root=str(tmp_path / "images"))
    (post,) = load_manifest(p, m)
    assert post.images == [os.path.join(str(tmp_path / "images"), "T698197155698184192.jpg")]


def test_relative_images_default_to_manifest_folder_and_absolute_are_kept(tmp_path):
    absolute = str(tmp_path / "elsewhere" / "x.png")
    p = write(tmp_path / "t.csv", f"id,text,img\n1,a,sub/a.png\n2,b,{absolute}\n")
    posts = load_manifest(p, ColumnMapping(image="img"))
    assert posts[0].images == [os.path.join(str(tmp_path), "sub/a.png")]
    assert posts[1].images == [absolute]


def test_no_id_column_gives_row_ids(tmp_path):
    p = write(tmp_path / "t.csv", "text\na\n\nb\n")
    posts = load_manifest(p, ColumnMapping(id=None))
    assert [(x.id, x.meta["row"]) for x in posts] == [("row-1", 1), ("row-2", 2)]


def test_jsonl_import(tmp_path):
    lines = [
        {"id": 698197155698184192, "text": "hi", "imgs": ["a.jpg", "b.jpg"], "label": 1, "extra": {"k": 1}},
        {"id": "x2", "text": None, "imgs": "c.jpg", "label": None},
        {"id": "x3", "text": "no image key"},
    ]
    text = json.dumps(lines[0]) + "\n\n" + json.dumps(lines[1]) + "\n" + json.dumps(lines[2]) + "\n"
    p = write(tmp_path / "posts.jsonl", text)
    m = ColumnMapping(image="imgs", image_root="r", labels={"y": "label"}, keep=["extra"])
    posts = load_manifest(p, m)
    assert posts[0].id == "698197155698184192"
    assert posts[0].images == [os.path.join("r", "a.jpg"), os.path.join("r", "b.jpg")]
    assert posts[0].labels == {"y": "1"}
    assert posts[0].meta == {"source": str(p), "row": 1, "extra": '{"k": 1}', "image_key": os.path.join("r", "a.jpg")}
    assert posts[1].text == "" and posts[1].labels == {} and posts[1].meta["row"] == 3  # line numbers
    assert posts[2].images == [] and posts[2].meta["extra"] == ""


def test_malformed_json_line_is_named(tmp_path):
    p = write(tmp_path / "p.ndjson", '{"id": "1", "text": "a"}\n{"id": "2", "text": \n')
    with pytest.raises(ManifestError, match=r"line 2"):
        load_manifest(p, ColumnMapping())
    p2 = write(tmp_path / "q.jsonl", '["not", "an", "object"]\n')
    with pytest.raises(ManifestError, match="line 1.*object"):
        load_manifest(p2, ColumnMapping())


def _write_table(tmp_path, fmt: str):
    if fmt == "csv":
        return write(tmp_path / "t.csv", "Name,Text,Valence\na.png,hi,positive\n")
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    p = tmp_path / "t.parquet"
    pd.DataFrame({"Name": ["a.png"], "Text": ["hi"], "Valence": ["positive"]}).to_parquet(p, index=False)
    return p


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_mapped_column_names_it_and_lists_existing(tmp_path, fmt):
    p = _write_table(tmp_path, fmt)
    with pytest.raises(ManifestError) as e:
        load_manifest(p, ColumnMapping(id="Name", text="text", labels={"sentiment": "valence"}))
    msg = str(e.value)
    assert "'text'" in msg and "'valence'" in msg
    assert "'Name', 'Text', 'Valence'" in msg
    assert "did you mean 'Text'" in msg
    assert str(p) in msg


def test_missing_key_in_every_jsonl_line(tmp_path):
    p = write(tmp_path / "t.jsonl", '{"id": "1", "body": "x"}\n')
    with pytest.raises(ManifestError, match="'text'.*'body'"):
        load_manifest(p, ColumnMapping())


def test_non_utf8_file_gives_clear_error(tmp_path):
    p = write(tmp_path / "t.csv", "id,text\n1,caf\u00e9 cr\u00e8me\n", encoding="cp1252")
    with pytest.raises(ManifestError) as e:
        load_manifest(p, ColumnMapping())
    msg = str(e.value)
    assert "utf-8" in msg and "offset 13" in msg and "line 2" in msg and "encoding" in msg
    (post,) = load_manifest(p, ColumnMapping(encoding="cp1252"))
    assert post.text == "caf\u00e9 cr\u00e8me"


def test_utf8_bom_and_crlf(tmp_path):
    p = tmp_path / "t.csv"
    p.write_bytes("\ufeffid,text\r\n1,\u0939\u093f\u0902\u0926\u0940 text\r\n".encode("utf-8"))
    (post,) = load_manifest(p, ColumnMapping())
    assert post.id == "1" and post.text == "\u0939\u093f\u0902\u0926\u0940 text"


def test_quoted_multiline_cells_and_row_numbers(tmp_path):
    p = write(tmp_path / "t.csv", 'id,text\n1,"line one\nline two"\n2,"say ""hi"""\n')
    posts = load_manifest(p, ColumnMapping())
    assert posts[0].text == "line one\nline two" and posts[1].text == 'say "hi"'
    assert [x.meta["row"] for x in posts] == [1, 2]


def test_ragged_row_raises_with_hint_and_csv_options_fix_it(tmp_path):
    p = write(tmp_path / "t.csv", 'id,text,y\n"1","ok","0"\n"2","he said \\"yes, sure\\" ok","1"\n')
    with pytest.raises(ManifestError, match=r"row 2.*escapechar"):
        load_manifest(p, ColumnMapping())
    posts = load_manifest(p, ColumnMapping(csv_options={"escapechar": "\\", "doublequote": False}))
    assert posts[1].text == 'he said "yes, sure" ok'


def test_trailing_empty_fields_are_tolerated(tmp_path):
    p = write(tmp_path / "t.csv", "id,text\n1,a,,\n2\n")
    posts = load_manifest(p, ColumnMapping())
    assert [(x.id, x.text) for x in posts] == [("1", "a"), ("2", "")]


def test_tsv_and_explicit_format(tmp_path):
    tsv = write(tmp_path / "t.tsv", "id\ttext\n1\ta, b\n")
    assert load_manifest(tsv, ColumnMapping())[0].text == "a, b"
    txt = write(tmp_path / "t.txt", "id;text\n1;x\n")
    with pytest.raises(ManifestError, match="format"):
        load_manifest(txt, ColumnMapping())
    assert load_manifest(txt, ColumnMapping(format="csv", csv_options={"sep": ";"}))[0].text == "x"


def test_missing_and_empty_files(tmp_path):
    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope.csv", ColumnMapping())
    with pytest.raises(ManifestError, match="empty"):
        load_manifest(write(tmp_path / "e.csv", ""), ColumnMapping())
    assert load_manifest(write(tmp_path / "h.csv", "id,text\n"), ColumnMapping()) == []


def test_mapping_is_checked_early():
    with pytest.raises(ValueError, match="image_pattern"):
        ColumnMapping(image="x", image_pattern="static.jpg")
    with pytest.raises(ValueError, match="keep"):
        ColumnMapping(keep=["source"])
    with pytest.raises(ValueError, match="label_values"):
        ColumnMapping(labels={"a": "col"}, label_values={"b": {}})
    with pytest.raises(ValueError, match="format"):
        ColumnMapping(format="xlsx")


def test_save_and_load_posts_jsonl_roundtrip(tmp_path):
    posts = [Post(id="698197155698184192", text="h\u00e9llo\nworld", images=["a.jpg"], labels={"s": "pos"},
                  meta={"source": "x.csv", "row": 1, "split": "train"}),
             Post(id="2", text="")]
    out = tmp_path / "sub" / "posts.jsonl"
    assert save_posts_jsonl(posts, out) == 2
    assert load_posts_jsonl(out) == posts
    save_posts_jsonl(posts[:1], out)  # overwrite in place
    assert load_posts_jsonl(out) == posts[:1]
    assert sorted(os.listdir(out.parent)) == ["posts.jsonl"]  # no temp file left behind


def test_save_is_atomic_on_failure(tmp_path):
    out = tmp_path / "posts.jsonl"
    save_posts_jsonl([Post(id="1", text="a")], out)

    def broken():
        yield Post(id="2", text="b")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        save_posts_jsonl(broken(), out)
    assert [p.id for p in load_posts_jsonl(out)] == ["1"]
    assert sorted(os.listdir(tmp_path)) == ["posts.jsonl"]


def test_load_posts_jsonl_names_bad_line(tmp_path):
    p = write(tmp_path / "p.jsonl", json.dumps(Post(id="1", text="a").to_dict()) + "\n{bad\n")
    with pytest.raises(ManifestError, match="line 2"):
        load_posts_jsonl(p)


# ------------------------------------------------------------------------------------------------ Parquet


def _frame():
    pd = pytest.importorskip("pandas")
    return pd.DataFrame({
        "tweet_id": pd.array([698197155698184192, 2, 999999999999999999], dtype="int64"),
        "title": ["Hello", None, "  spaced  "],
        "body": ["world", "only body", ""],
        "image": ["a.jpg", None, "sub/c.png"],
        "label": ["pos", None, "neg"],
        "score": [1.5, float("nan"), 2.0],
        "count": pd.array([3, None, 70000000000000001], dtype="Int64"),
        "flag": [True, False, True],
        "split": ["train", "val", None],
    })


_MAPPING = dict(id="tweet_id", text=["title", "body"], image="image", labels={"y": "label", "s": "score"},
                split="split", keep=["count", "flag"])


def test_parquet_import_equals_csv_import_of_the_same_table(tmp_path):
    pytest.importorskip("pyarrow")
    df = _frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_parquet(tmp_path / "t.parquet", index=False)
    from_csv = load_manifest(tmp_path / "t.csv", ColumnMapping(**_MAPPING))
    from_pq = load_manifest(tmp_path / "t.parquet", ColumnMapping(**_MAPPING))
    assert [p.meta.pop("source") for p in from_pq] == [str(tmp_path / "t.parquet")] * 3
    for p in from_csv:
        p.meta.pop("source")
    assert from_pq == from_csv
    a, b, c = from_pq
    assert [p.id for p in from_pq] == ["698197155698184192", "2", "999999999999999999"]  # exact, no float
    assert a.text == "Hello world" and b.text == "only body" and c.text == "spaced"
    assert a.images == [os.path.join(str(tmp_path), "a.jpg")] and b.images == []
    assert a.labels == {"y": "pos", "s": "1.5"} and b.labels == {}  # nulls → no label
    assert [p.meta["row"] for p in from_pq] == [1, 2, 3]
    assert a.meta["split"] == "train" and b.meta["split"] == "dev" and "split" not in c.meta
    assert [p.meta["count"] for p in from_pq] == ["3", "", "70000000000000001"]
    assert [p.meta["flag"] for p in from_pq] == ["True", "False", "True"]


def test_parquet_with_index_and_explicit_format(tmp_path):
    pytest.importorskip("pyarrow")
    df = _frame().set_index("tweet_id")  # the id as the pandas index is still a column of the file
    df.to_parquet(tmp_path / "posts.data")
    with pytest.raises(ManifestError, match="format"):
        load_manifest(tmp_path / "posts.data", ColumnMapping(**_MAPPING))
    posts = load_manifest(tmp_path / "posts.data", ColumnMapping(**_MAPPING, format="parquet"))
    assert [p.id for p in posts] == ["698197155698184192", "2", "999999999999999999"]


def test_parquet_list_column_gives_several_images(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    df = pd.DataFrame({"id": ["1", "2", "3", "4"], "text": ["a", "b", "c", "d"],
                       "media": [["111", "222"], [], None, ["333", None, ""]]})
    df.to_parquet(tmp_path / "t.parquet")
    m = ColumnMapping(image="media", image_pattern="T{}.jpg", image_root="media_dir", keep=["media"])
    posts = load_manifest(tmp_path / "t.parquet", m)
    j = lambda n: os.path.join("media_dir", n)  # noqa: E731
    assert [p.images for p in posts] == [[j("T111.jpg"), j("T222.jpg")], [], [], [j("T333.jpg")]]
    assert posts[0].meta["media"] == '["111", "222"]' and posts[2].meta["media"] == ""  # as JSON, like JSONL


def test_parquet_string_image_cells_still_split(tmp_path):
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    pd.DataFrame({"id": [1], "text": ["a"], "img": ["x.jpg; y.jpg"]}).to_parquet(tmp_path / "t.pq")
    (post,) = load_manifest(tmp_path / "t.pq", ColumnMapping(image="img", image_sep=";", image_root="r"))
    assert post.images == [os.path.join("r", "x.jpg"), os.path.join("r", "y.jpg")]


def test_parquet_structural_errors(tmp_path):
    pa = pytest.importorskip("pyarrow")
    import pyarrow.parquet as pq

    with pytest.raises(ManifestError, match="not found"):
        load_manifest(tmp_path / "nope.parquet", ColumnMapping())
    with pytest.raises(ManifestError, match="Parquet"):
        load_manifest(write(tmp_path / "fake.parquet", "id,text\n1,a\n"), ColumnMapping())
    table = pa.Table.from_arrays([pa.array(["1"]), pa.array(["a"]), pa.array(["b"])], names=["id", "text", "text"])
    pq.write_table(table, tmp_path / "dup.parquet")
    with pytest.raises(ManifestError, match="more than once"):
        load_manifest(tmp_path / "dup.parquet", ColumnMapping())
    empty = pa.table({"id": pa.array([], pa.string()), "text": pa.array([], pa.string())})
    pq.write_table(empty, tmp_path / "empty.parquet")
    assert load_manifest(tmp_path / "empty.parquet", ColumnMapping()) == []


def test_parquet_without_pyarrow_says_how_to_install(tmp_path, monkeypatch):
    import sys

    p = write(tmp_path / "t.parquet", "not read")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ManifestError, match="pip install pyarrow"):
        load_manifest(p, ColumnMapping())


def test_tsv_written_by_pandas_equals_csv(tmp_path):
    df = _frame()
    df.to_csv(tmp_path / "t.csv", index=False)
    df.to_csv(tmp_path / "t.tsv", index=False, sep="\t")
    def strip(posts):
        return [(p.id, p.text, p.images, p.labels, {k: v for k, v in p.meta.items() if k != "source"})
                for p in posts]

    assert strip(load_manifest(tmp_path / "t.tsv", ColumnMapping(**_MAPPING))) == strip(
        load_manifest(tmp_path / "t.csv", ColumnMapping(**_MAPPING)))
