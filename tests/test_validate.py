import pytest
from PIL import Image

from mmpost.data.manifest import ColumnMapping, load_manifest
from mmpost.data.post import Post
from mmpost.data.validate import (
    POLICIES,
    DataValidationError,
    ValidationReport,
    apply_policy,
    validate_posts,
)

TASKS = {"sentiment": ["positive", "neutral", "negative"]}


@pytest.fixture()
def dataset(tmp_path):
    """A manifest with one of each problem, plus two clean posts."""
    imgs = tmp_path / "imgs"
    imgs.mkdir()
    for name in ("ok1", "ok2", "empty", "label", "dup"):
        Image.new("RGB", (16, 16), (200, 10, 10)).save(imgs / f"{name}.jpg")
    good = (imgs / "ok1.jpg").read_bytes()
    (imgs / "corrupt.jpg").write_bytes(good[: len(good) // 3])
    csv = tmp_path / "posts.csv"
    csv.write_text(
        "id,text,image,sentiment\n"
        "p1,fine post,ok1.jpg,positive\n"          # row 1
        "p2,corrupt image,corrupt.jpg,neutral\n"   # row 2
        "p3,missing image,gone.jpg,negative\n"     # row 3
        "p4,   ,empty.jpg,positive\n"              # row 4
        "p5,odd label,label.jpg,happy\n"           # row 5
        "p1,duplicate id,dup.jpg,neutral\n"        # row 6
        "p7,text only,,negative\n",                # row 7
        encoding="utf-8",
    )
    m = ColumnMapping(image="image", image_root=str(imgs), labels={"sentiment": "sentiment"})
    return csv, load_manifest(csv, m)


def test_one_report_names_every_problem(dataset):
    csv, posts = dataset
    report = validate_posts(posts, TASKS)
    assert not report.ok and report.n_posts == 7
    assert report.counts() == {"missing_image": 1, "bad_image": 1, "empty_text": 1, "unknown_label": 1,
                               "duplicate_id": 1}
    by_kind = {i.kind: i for i in report.issues}
    assert (by_kind["bad_image"].post_id, by_kind["bad_image"].row, by_kind["bad_image"].field) == ("p2", 2, "images")
    assert "truncated" in by_kind["bad_image"].message and "corrupt.jpg" in by_kind["bad_image"].message
    assert by_kind["missing_image"].row == 3 and "gone.jpg" in by_kind["missing_image"].message
    assert (by_kind["empty_text"].row, by_kind["empty_text"].field) == (4, "text")
    assert by_kind["unknown_label"].field == "labels.sentiment" and "'happy'" in by_kind["unknown_label"].message
    dup = by_kind["duplicate_id"]
    assert dup.row == 6 and f"{csv}:1" in dup.message  # names both rows
    assert all(i.source == str(csv) for i in report.issues)
    assert report.bad_post_ids() == {"p1", "p2", "p3", "p4", "p5"}
    assert report.bad_post_ids(["missing_image", "bad_image"]) == {"p2", "p3"}

    text = report.format()
    assert text.splitlines()[0] == "Validated 7 posts: 5 issues in 5 posts."
    for row, fld in [(2, "images"), (3, "images"), (4, "text"), (5, "labels.sentiment"), (6, "id")]:
        assert any(line.startswith(f"{csv}:{row} ") and fld in line for line in text.splitlines())
    assert "more issues" not in text


def test_stop_raises_with_the_report(dataset):
    _, posts = dataset
    report = validate_posts(posts, TASKS)
    with pytest.raises(DataValidationError) as e:
        apply_policy(posts, report, "stop")
    assert e.value.report is report
    assert str(e.value) == report.format()
    assert isinstance(e.value, ValueError)


def test_stop_passes_clean_data(dataset):
    _, posts = dataset
    clean = [posts[0], posts[6]]
    report = validate_posts(clean, TASKS)
    assert report.ok and report.format() == "Validated 2 posts: no issues."
    out, counts = apply_policy(clean, report)
    assert out == clean and counts == {"kept": 2, "image_masked": 0, "skipped": 0}


def test_skip_drops_and_counts(dataset):
    _, posts = dataset
    out, counts = apply_policy(posts, validate_posts(posts, TASKS), "skip")
    # the first "p1" stays; its later duplicate goes
    assert [(p.id, p.meta["row"]) for p in out] == [("p1", 1), ("p7", 7)]
    assert counts == {"kept": 2, "image_masked": 0, "skipped": 5}


def test_text_only_masks_image_problems(dataset):
    _, posts = dataset
    out, counts = apply_policy(posts, validate_posts(posts, TASKS), "text-only")
    assert [p.id for p in out] == ["p1", "p2", "p3", "p7"]
    assert counts == {"kept": 2, "image_masked": 2, "skipped": 3}
    masked = {p.id: p for p in out if p.meta.get("image_masked")}
    assert set(masked) == {"p2", "p3"}
    assert all(p.images == [] and p.text for p in masked.values())
    assert posts[1].images and "image_masked" not in posts[1].meta  # input untouched


def test_unknown_policy_lists_valid_ones(dataset):
    _, posts = dataset
    report = validate_posts(posts, TASKS)
    with pytest.raises(ValueError) as e:
        apply_policy(posts, report, "ignore")
    assert all(p in str(e.value) for p in POLICIES)
    with pytest.raises(ValueError, match="same posts"):
        apply_policy(posts[:3], report, "skip")


def test_without_image_decoding_only_existence_is_checked(dataset):
    _, posts = dataset
    counts = validate_posts(posts, TASKS, check_images=False).counts()
    assert counts.get("missing_image") == 1 and "bad_image" not in counts


def test_no_tasks_means_no_label_check_and_require_labels(tmp_path):
    posts = [Post(id="a", text="x", labels={"s": "whatever"}), Post(id="b", text="y")]
    assert validate_posts(posts).ok
    report = validate_posts(posts, {"s": ["whatever"]}, require_labels=True)
    assert report.counts() == {"missing_label": 1}
    assert report.issues[0].post_id == "b" and report.issues[0].field == "labels.s"
    with pytest.raises(ValueError):
        validate_posts(posts, require_labels=True)


def test_image_guards_and_shared_images(tmp_path):
    p = tmp_path / "big.png"
    Image.effect_noise((64, 64), 40).convert("RGB").save(p)
    posts = [Post(id=str(i), text="t", images=[str(p)]) for i in range(10)]  # one file, checked once
    report = validate_posts(posts, image_guards={"max_bytes": 100}, progress=True)
    assert report.counts() == {"bad_image": 10}
    assert "too large" in report.issues[0].message
    assert validate_posts(posts).ok


def test_multi_image_post_fields(tmp_path):
    Image.new("RGB", (8, 8)).save(tmp_path / "a.png")
    post = Post(id="m", text="t", images=[str(tmp_path / "a.png"), str(tmp_path / "b.png")])
    report = validate_posts([post])
    (issue,) = report.issues
    assert issue.field == "images[1]" and issue.kind == "missing_image" and issue.source is None
    assert issue.where() == "<posts>"


def test_format_cuts_long_reports_but_shows_every_kind():
    posts = [Post(id=f"id{i}", text="", images=[f"/no/such/{i}.jpg"]) for i in range(30)]
    posts.append(Post(id="id0", text="dup"))
    report = validate_posts(posts)
    assert report.counts() == {"missing_image": 30, "empty_text": 30, "duplicate_id": 1}
    text = report.format(max_lines=5)
    body = [line for line in text.splitlines() if line.startswith("<posts>")]
    assert len(body) == 5
    assert any("[duplicate_id]" in line for line in body)
    assert "56 more issues not shown" in text
    assert isinstance(ValidationReport(n_posts=0, issues=[]).format(), str)
