"""The loaded run, shared by every request: safe image decoding per request, and the model under one lock.

Why a lock, not a pool of models or a batching queue: a request's work has two parts. Checking and decoding its
images (PIL, which releases the GIL) needs no shared state, so it runs in the request's own thread, in parallel
with other requests. The forward pass runs the shared towers and model, which mmpost does not promise to be
thread-safe (a tower may keep a tokenizer or a cache), and torch already spreads one forward pass over every
core, so a second pass at the same time would take cores from the first rather than add throughput. One
``threading.Lock`` around the forward pass therefore keeps one copy of the weights and one set of activations
in memory, and makes a request's answer independent of what else is in flight: the same post gives the same
probabilities, bit for bit, alone or under load (``tests/test_serve.py`` checks this). A batching queue would
give that up (a text's padding would depend on the batch it lands in); clients with many posts at once have
``/predict/batch``, one forward pass for up to ``max_batch`` posts.
"""
from __future__ import annotations

import io
import json
import tempfile
import threading
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from PIL import Image

from mmpost import registry
from mmpost.apps.predictor import Predictor
from mmpost.data.images import ImageError, open_image
from mmpost.data.post import Post
from mmpost.serve.errors import RequestRejected
from mmpost.serve.limits import OPTION, ServeLimits
from mmpost.serve.payload import PostInput


class PredictionService:
    def __init__(self, predictor: Predictor, limits: ServeLimits) -> None:
        family = registry.get("model", predictor.config.model.name)
        if family.inputs(predictor.config.model)[1] == "regions":
            raise ValueError(f"{predictor.run_dir}: model {predictor.config.model.name!r} reads precomputed region "
                             "features, which cannot be made from an uploaded image; serve a run whose model reads "
                             "the image tower")
        self.predictor = predictor
        self.limits = limits
        self._model_lock = threading.Lock()

    @property
    def run_name(self) -> str:
        return self.predictor.run_dir.resolve().name

    def predict(self, posts: Sequence[PostInput]) -> list[dict[str, Any]]:
        """One prediction record (:mod:`mmpost.evaluation.predictions`) per post, in order: ``{"id", "label",
        "probs", "image_used"}`` for a one-task run, ``{"id", "image_used", "tasks"}`` for several. A batch post
        without an id gets its position. Images are written to a private
        temporary folder, checked and decoded with the project's guarded decoder (a too-large or unreadable
        image rejects the request, naming the post), then predicted; the folder also holds this request's
        frozen-tower features, so serving never grows the run's feature cache. Raises :class:`RequestRejected`."""
        with tempfile.TemporaryDirectory(prefix="mmpost-serve-") as tmp:
            ready = [Post(id=str(i), text=p.text, images=self._image_file(p, Path(tmp) / f"{i}.img"))
                     for i, p in enumerate(posts)]
            with self._model_lock:
                scores = self.predictor.scores(ready, batch_size=max(1, len(ready)),
                                               cache_dir=Path(tmp) / "features")
        ids = [p.id if p.id is not None or not p.field else str(i) for i, p in enumerate(posts)]
        return self.predictor.records(ids, scores.probs, scores.image_used, probs_raw=scores.probs_raw)

    def _image_file(self, post: PostInput, path: Path) -> list[str]:
        """Write the post's image and check that it decodes within the limits; [] for a post without one."""
        if post.image is None:
            return []
        path.write_bytes(post.image)
        field = f"{post.field}image"
        try:
            open_image(path, max_bytes=self.limits.max_image_bytes, max_pixels=self.limits.max_image_pixels,
                       draft_size=1)    # JPEGs are checked at 1/8 scale: every byte is still read, at a fraction
        except ImageError as e:        # of the cost; the model's own decode follows
            if "too large" in e.reason:
                option = OPTION["max_image_pixels" if "pixels" in e.reason or "bomb" in e.reason
                                else "max_image_bytes"]
                raise RequestRejected(413, f"{field}: {e.reason} ({option})") from None
            raise RequestRejected(422, f"{field}: {e.reason}") from None
        except MemoryError:
            raise RequestRejected(413, f"{field}: out of memory while decoding the image") from None
        return [str(path)]

    def warm_up(self) -> None:
        """One text-only post and one with a small image through the whole path, before the first request:
        lazy initialisation is paid at start-up, and a run that cannot predict fails there, not on a client."""
        png = io.BytesIO()
        Image.new("RGB", (64, 48), (200, 120, 40)).save(png, format="PNG")
        self.predict([PostInput(None, "warm up", None, ""), PostInput(None, "warm up", png.getvalue(), "")])

    def describe(self) -> dict[str, Any]:
        """What ``GET /model`` answers: labels, a summary of the training config, the run's metrics, the limits."""
        cfg = self.predictor.config
        metrics_file = self.predictor.run_dir / "metrics.json"
        return {
            "run": self.run_name,
            "task": self.predictor.task,
            "labels": list(self.predictor.labels),
            "tasks": [{"name": t.name, "labels": list(t.labels), "multi_label": t.multi_label}
                      for t in self.predictor.tasks],
            "config": {
                "model": asdict(cfg.model),
                "text_encoder": asdict(cfg.text_encoder),
                "image_encoder": asdict(cfg.image_encoder),
                "objectives": cfg.objectives.to_section(),
                "train": {k: getattr(cfg.train, k) for k in ("epochs", "batch_size", "lr", "encoder_lr", "seed")},
                "data_source": cfg.data.source,
            },
            "metrics": json.loads(metrics_file.read_text()) if metrics_file.exists() else None,
            "limits": self.limits.as_dict(),
        }
