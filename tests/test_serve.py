"""The HTTP API over a tiny trained run: every endpoint, every limit, bad input, and concurrent requests."""
from __future__ import annotations

import base64
import io
import json
import struct
import tempfile
import threading
import time
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image
from typer.testing import CliRunner

from mmpost.apps.predictor import Predictor
from mmpost.apps.train import train
from mmpost.cli import app as cli_app
from mmpost.config import load_config
from mmpost.data.post import Post
from mmpost.evaluation.predictions import run_tasks
from mmpost.serve.app import create_app
from mmpost.serve.limits import ServeLimits
from mmpost.serve.service import PredictionService
from tests.conftest import tiny_overrides, write_toy_csv
from tests.test_prediction_schema import two_task_predictor


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny run (raw text tower, frozen image tower), its folder and its images."""
    folder = tmp_path_factory.mktemp("serve")
    csv_path = write_toy_csv(folder)
    result = train(load_config(None, tiny_overrides(folder, csv_path) + ["name=served", "train.epochs=2"]))
    return {"dir": result.run_dir, "imgs": folder / "imgs", "cache": folder / "cache"}


@pytest.fixture(scope="module")
def predictor(run):
    return Predictor(run["dir"])


@pytest.fixture(scope="module")
def client(predictor):
    with TestClient(create_app(predictor)) as c:
        yield c


SMALL = ServeLimits(max_body_bytes=60_000, max_image_bytes=20_000, max_image_pixels=10_000, max_text_chars=50,
                    max_batch=2)


@pytest.fixture(scope="module")
def strict(predictor):
    with TestClient(create_app(predictor, SMALL)) as c:
        yield c


def png(size=(32, 32), colour=(220, 30, 30), noise: bool = False) -> bytes:
    arr = np.zeros((size[1], size[0], 3), dtype=np.uint8) + np.array(colour, dtype=np.uint8)
    if noise:
        arr = np.random.default_rng(0).integers(0, 256, arr.shape, dtype=np.uint8)
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="PNG")
    return buf.getvalue()


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def refused(response, status: int, *needles: str) -> str:
    assert response.status_code == status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for needle in needles:
        assert needle in detail, detail
    return detail


# --- endpoints -------------------------------------------------------------------------------------------------

def test_health_and_model_describe_the_run(client, run):
    h = client.get("/health")
    assert h.status_code == 200 and h.json() == {"status": "ok", "run": "served", "task": "mood", "tasks": ["mood"]}
    m = client.get("/model").json()
    assert m["run"] == "served" and m["task"] == "mood"
    labels = list(run_tasks(run["dir"])[0].labels)
    assert m["labels"] == labels and m["tasks"] == [{"name": "mood", "labels": labels, "multi_label": False}]
    assert m["config"]["model"]["name"] == "conc" and m["config"]["text_encoder"]["name"] == "tiny-text"
    assert set(m["config"]["objectives"]) == {"weighting", "ce"} and m["config"]["train"]["epochs"] == 2
    assert m["metrics"] == json.loads((run["dir"] / "metrics.json").read_text())
    assert m["limits"] == ServeLimits().as_dict()


def test_multipart_prediction_is_the_predictors(client, predictor, run, tmp_path):
    image = (run["imgs"] / "p0.png").read_bytes()
    r = client.post("/predict", data={"text": "a post about thing 0", "id": "x1"},
                    files={"image": ("p0.png", image, "image/png")})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["id"] == "x1" and got["image_used"] is True
    assert list(got["probs"]) == predictor.labels and got["label"] == max(got["probs"], key=got["probs"].get)
    expected, used = predictor.predict_with_mask([Post(id="x", text="a post about thing 0",
                                                       images=[str(run["imgs"] / "p0.png")])],
                                                 cache_dir=tmp_path / "features")
    assert used.tolist() == [True]
    assert list(got["probs"].values()) == pytest.approx(expected[0].tolist(), abs=1e-6)


def test_json_with_base64_gives_the_same_answer_as_multipart(client, run):
    image = (run["imgs"] / "p4.png").read_bytes()
    a = client.post("/predict", data={"text": "thing 4"}, files={"image": ("a.png", image, "image/png")}).json()
    b = client.post("/predict", json={"text": "thing 4", "image": b64(image)}).json()
    c = client.post("/predict", json={"id": 7, "text": "thing 4",
                                      "image": "data:image/png;base64," + base64.encodebytes(image).decode()}).json()
    assert a["probs"] == b["probs"] == c["probs"] and a["id"] is None and c["id"] == "7"


def test_a_post_without_an_image_is_predicted_from_its_text(client):
    for r in (client.post("/predict", json={"text": "only words here"}),
              client.post("/predict", data={"text": "only words here"}),
              client.post("/predict", data={"text": "only words here"}, files={"image": ("", b"", "")})):
        assert r.status_code == 200, r.text
        assert r.json()["image_used"] is False and sum(r.json()["probs"].values()) == pytest.approx(1, abs=1e-5)


def test_an_image_without_text_is_predicted(client, run):
    r = client.post("/predict", json={"image": b64((run["imgs"] / "p1.png").read_bytes())})
    assert r.status_code == 200 and r.json()["image_used"] is True


def test_batch_predicts_in_order(client, run):
    posts = [{"text": "thing 1", "image": b64((run["imgs"] / "p1.png").read_bytes())},
             {"id": "b", "text": "no picture"},
             {"text": "thing 2", "image": b64((run["imgs"] / "p2.png").read_bytes())}]
    r = client.post("/predict/batch", json={"posts": posts})
    assert r.status_code == 200, r.text
    preds = r.json()["predictions"]
    assert [p["id"] for p in preds] == ["0", "b", "2"] and [p["image_used"] for p in preds] == [True, False, True]
    for post, pred in zip(posts, preds):
        alone = client.post("/predict", json={k: v for k, v in post.items() if k != "id"}).json()
        assert list(pred["probs"].values()) == pytest.approx(list(alone["probs"].values()), abs=1e-5)


def test_the_loaded_run_gives_records_of_the_one_schema(predictor, run):
    posts = [Post(id="a", text="a post about thing 0", images=[str(run["imgs"] / "p0.png")], labels={"mood": "red"}),
             Post(id="b", text="no picture")]
    records = predictor.predict(posts)
    probs = predictor.predict_proba(posts)
    assert [list(r) for r in records] == [["id", "label", "probs", "probs_raw", "image_used", "gold"],
                                          ["id", "label", "probs", "probs_raw", "image_used"]]
    assert records[0]["gold"] == "red" and [r["image_used"] for r in records] == [True, False]
    assert np.allclose([list(r["probs"].values()) for r in records], probs, atol=1e-7)


def test_a_run_with_several_tasks_answers_every_task(run):
    predictor = two_task_predictor(run["dir"])
    image = b64((run["imgs"] / "p1.png").read_bytes())
    with TestClient(create_app(predictor)) as c:
        got = c.post("/predict", json={"id": "a", "text": "thing 1", "image": image}).json()
        assert list(got) == ["id", "image_used", "tasks"] and list(got["tasks"]) == ["mood", "topics"]
        mood, topics = got["tasks"]["mood"], got["tasks"]["topics"]
        assert mood["label"] == max(mood["probs"], key=mood["probs"].get)
        assert sum(mood["probs"].values()) == pytest.approx(1, abs=1e-5)
        assert topics["label"] == [k for k, p in topics["probs"].items() if p >= 0.5]     # independent sigmoids
        batch = c.post("/predict/batch", json={"posts": [{"text": "thing 1", "image": image}, {"text": "x"}]})
        in_batch = batch.json()["predictions"][0]["tasks"]           # the same up to padding's float rounding
        assert batch.status_code == 200 and list(in_batch) == ["mood", "topics"]
        for name, alone in got["tasks"].items():
            assert in_batch[name]["label"] == alone["label"]
            assert in_batch[name]["probs"] == pytest.approx(alone["probs"], abs=1e-5)
        assert c.get("/health").json()["tasks"] == ["mood", "topics"]
        assert c.get("/model").json()["tasks"][1] == {"name": "topics", "labels": ["sport", "food"],
                                                      "multi_label": True}
        spec = c.get("/openapi.json").json()
        answer = spec["paths"]["/predict"]["post"]["responses"]["200"]["content"]["application/json"]["schema"]
        assert answer["$ref"].endswith("/TasksPredictionOut")


def test_openapi_documents_every_endpoint_and_the_docs_page_works_offline(client):
    spec = client.get("/openapi.json").json()
    assert {"/predict", "/predict/batch", "/health", "/model"} <= set(spec["paths"])
    body = spec["paths"]["/predict"]["post"]["requestBody"]["content"]
    assert set(body) == {"multipart/form-data", "application/json", "application/x-www-form-urlencoded"}
    assert {"413", "415", "422"} <= set(spec["paths"]["/predict"]["post"]["responses"])
    assert "PostIn" in spec["components"]["schemas"] and "BatchIn" in spec["components"]["schemas"]
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    js = page.text.split("src=\"")[1].split("\"")[0]
    assert client.get(js).status_code == 200
    redoc = client.get("/redoc")
    assert redoc.status_code == 200 and "redoc.standalone.js" in redoc.text and "fonts.googleapis" not in redoc.text


# --- limits ----------------------------------------------------------------------------------------------------

def test_body_limit_413_with_and_without_a_content_length(strict):
    big = {"text": "x", "image": "A" * 70_000}
    refused(strict.post("/predict", json=big), 413, "request body", "60,000", "--max-body-bytes")
    chunks = iter([json.dumps(big).encode()[i:i + 8192] for i in range(0, 70_100, 8192)])
    r = strict.post("/predict/batch", content=chunks, headers={"content-type": "application/json"})
    refused(r, 413, "--max-body-bytes")
    files = {"image": ("big.png", b"\x89PNG" + bytes(70_000), "image/png")}
    refused(strict.post("/predict", data={"text": "x"}, files=files), 413, "--max-body-bytes")


def test_image_byte_limit_413(strict):
    noisy = png((100, 100), noise=True)          # ~30 kB: over 20,000 bytes, under the body limit
    assert 20_000 < len(noisy) < 40_000
    refused(strict.post("/predict", data={"text": "x"}, files={"image": ("n.png", noisy, "image/png")}), 413,
            "image:", "20,000", "--max-image-bytes")
    refused(strict.post("/predict", json={"text": "x", "image": b64(noisy)}), 413, "image:", "--max-image-bytes")
    batch = {"posts": [{"text": "ok"}, {"text": "x", "image": b64(noisy)}]}
    refused(strict.post("/predict/batch", json=batch), 413, "posts[1].image:", "--max-image-bytes")


def test_image_pixel_limit_413_before_decoding(strict):
    wide = png((200, 200))                       # 40,000 pixels in a few hundred bytes
    assert len(wide) < 2_000
    refused(strict.post("/predict", data={"text": "x"}, files={"image": ("w.png", wide, "image/png")}), 413,
            "image:", "200x200", "--max-image-pixels")
    refused(strict.post("/predict", json={"text": "x", "image": b64(wide)}), 413, "--max-image-pixels")


def png_header_claiming(width: int, height: int) -> bytes:
    """A 1x1 PNG whose header claims width x height: a decompression bomb that costs nothing to send."""
    buf = io.BytesIO()
    Image.new("RGB", (1, 1)).save(buf, format="PNG")
    data = bytearray(buf.getvalue())
    data[16:24] = struct.pack(">II", width, height)                   # IHDR width, height
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))   # IHDR checksum
    return bytes(data)


@pytest.mark.parametrize("side", [6_000, 20_000])
def test_decompression_bombs_413_with_the_default_limits(client, side):
    bomb = png_header_claiming(side, side)
    assert len(bomb) < 100
    detail = refused(client.post("/predict", data={"text": "x"}, files={"image": ("b.png", bomb, "image/png")}),
                     413, "image:", "--max-image-pixels")
    if side == 6_000:
        assert "6000x6000 = 36,000,000 pixels > limit 25,000,000" in detail


def test_text_limit_422_names_the_field(strict):
    long_text = "word " * 20
    refused(strict.post("/predict", json={"text": long_text}), 422, "text:", "100 characters", "--max-text-chars")
    refused(strict.post("/predict", data={"text": long_text}), 422, "text:", "--max-text-chars")
    refused(strict.post("/predict/batch", json={"posts": [{"text": "ok"}, {"text": long_text}]}), 422,
            "posts[1].text:", "--max-text-chars")
    assert strict.post("/predict", json={"text": "word " * 10}).status_code == 200     # exactly 50: allowed


def test_batch_limit_413(strict):
    refused(strict.post("/predict/batch", json={"posts": [{"text": "a"}] * 3}), 413, "3 posts", "--max-batch")
    assert strict.post("/predict/batch", json={"posts": [{"text": "a"}] * 2}).status_code == 200


# --- bad input -------------------------------------------------------------------------------------------------

def test_bad_base64_422(client):
    refused(client.post("/predict", json={"text": "x", "image": "not*base64!"}), 422, "image:", "not valid base64")
    refused(client.post("/predict", json={"text": "x", "image": "QUJDRA"}), 422, "not valid base64")
    refused(client.post("/predict/batch", json={"posts": [{"text": "x", "image": "é"}]}), 422, "posts[0].image:")


def test_corrupt_images_422(client):
    good = png((32, 32), noise=True)
    jpeg = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 200, 30)).save(jpeg, format="JPEG")
    cases = {"truncated png": good[: len(good) // 2], "garbage after a png header": b"\x89PNG\r\n\x1a\n" + bytes(64),
             "not an image": b"hello, this is text", "truncated jpeg": jpeg.getvalue()[:300]}
    for name, data in cases.items():
        r = client.post("/predict", data={"text": "x"}, files={"image": ("f.png", data, "image/png")})
        detail = refused(r, 422, "image:")
        assert "tmp" not in detail and "mmpost-serve" not in detail, (name, detail)     # no server paths leak
        refused(client.post("/predict", json={"text": "x", "image": b64(data)}), 422, "image:")
    refused(client.post("/predict", data={"text": "x"}, files={"image": ("e.png", b"", "image/png")}), 422,
            "empty")


def test_malformed_requests_are_refused_clearly(client):
    refused(client.post("/predict", json={"txt": "typo"}), 422, "txt", "Extra inputs")
    refused(client.post("/predict", json={"text": ""}), 422, "neither")
    refused(client.post("/predict", content=b"{not json", headers={"content-type": "application/json"}), 422,
            "not valid JSON")
    refused(client.post("/predict", content=b"text=hello", headers={"content-type": "text/plain"}), 415,
            "multipart/form-data", "application/json")
    refused(client.post("/predict", data={"text": "x", "caption": "y"}), 422, "caption")
    refused(client.post("/predict", data={"text": "x", "image": "aGVsbG8="}), 422, "file part")
    refused(client.post("/predict", data={"text": "x"}, files=[("image", ("a.png", png(), "image/png")),
                                                                ("image", ("b.png", png(), "image/png"))]),
            422, "one image per post")
    refused(client.post("/predict/batch", json={"posts": []}), 422, "empty")
    refused(client.post("/predict/batch", json={"post": []}), 422, "posts")
    refused(client.post("/predict/batch", json={"posts": [{"text": 3}]}), 422, "posts[0].text")
    refused(client.post("/predict/batch", content=b"[", headers={"content-type": "application/json"}), 422, "JSON")
    refused(client.post("/predict/batch", content=b'{"posts": []}', headers={"content-type": "text/plain"}), 415,
            "application/json", "text/plain")


# --- concurrency and state -------------------------------------------------------------------------------------

def test_concurrent_requests_give_the_sequential_answers_and_never_share_the_model(client, run, monkeypatch):
    def request(i: int) -> dict:
        image = (run["imgs"] / f"p{i % 12}.png").read_bytes()
        if i % 3 == 0:
            return client.post("/predict", data={"text": f"a post about thing {i % 7}"},
                               files={"image": ("p.png", image, "image/png")}).json()
        if i % 3 == 1:
            return client.post("/predict", json={"text": f"thing {i}", "image": b64(image)}).json()
        return client.post("/predict/batch", json={"posts": [{"text": f"thing {i}"},
                                                             {"text": "x", "image": b64(image)}]}).json()

    sequential = [request(i) for i in range(24)]
    service: PredictionService = client.app.state.service
    real = service.predictor.scores
    state = {"in_model": 0, "max_in_model": 0, "in_flight": 0, "max_in_flight": 0}
    guard = threading.Lock()

    def bump(key: str, by: int) -> None:
        with guard:
            state[key] += by
            state[f"max_{key}"] = max(state[f"max_{key}"], state[key])

    def watched_model(*args, **kwargs):
        bump("in_model", 1)
        time.sleep(0.005)                       # long enough for other requests to pile up at the lock
        try:
            return real(*args, **kwargs)
        finally:
            bump("in_model", -1)

    real_predict = service.predict

    def watched_request(*args, **kwargs):
        bump("in_flight", 1)
        try:
            return real_predict(*args, **kwargs)
        finally:
            bump("in_flight", -1)

    monkeypatch.setattr(service.predictor, "scores", watched_model)
    monkeypatch.setattr(service, "predict", watched_request)
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(request, range(24)))
    assert concurrent == sequential                     # bit for bit
    assert state["max_in_model"] == 1                   # one forward pass at a time ...
    assert state["max_in_flight"] > 1                   # ... while requests really were in flight together


def test_serving_leaves_no_files_and_does_not_grow_the_feature_cache(run, monkeypatch, tmp_path):
    over = tiny_overrides(run["dir"].parent.parent, str(run["dir"].parent.parent / "posts.csv"))
    frozen = train(load_config(None, over + ["name=frozen", "train.epochs=1", "text_encoder.trainable=false"]))
    before = sorted(p.name for p in run["cache"].rglob("*"))
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(scratch))
    with TestClient(create_app(frozen.run_dir)) as c:
        for i in range(5):
            r = c.post("/predict", json={"text": f"never seen text {i}",
                                         "image": b64(png((16 + i, 16), colour=(i * 40, 10, 10)))})
            assert r.status_code == 200 and r.json()["image_used"] is True
    assert sorted(p.name for p in run["cache"].rglob("*")) == before
    assert list(scratch.iterdir()) == []


def test_a_model_that_reads_region_files_is_refused_at_start(predictor, monkeypatch):
    from mmpost import registry
    family = registry.get("model", "conc")
    monkeypatch.setattr(family, "inputs", classmethod(lambda cls, config: ("pooled", "regions")))
    with pytest.raises(ValueError, match="region features"):
        PredictionService(predictor, ServeLimits())


def test_cli_refuses_bad_limits_and_missing_runs(tmp_path):
    res = CliRunner().invoke(cli_app, ["serve", str(tmp_path), "--max-batch", "0"])
    assert res.exit_code == 2 and "--max-batch must be a positive" in res.output
    res = CliRunner().invoke(cli_app, ["serve", str(tmp_path)])
    assert res.exit_code == 2 and "not a finished mmpost run" in res.output
    res = CliRunner().invoke(cli_app, ["serve", str(tmp_path / "nope")])
    assert res.exit_code == 2
