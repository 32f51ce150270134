"""How close an export is to torch: the lowest cosine over a check sample, part by part, and for the head whether
every post keeps its predicted class. The sample's batch sizes and text lengths differ from those traced, so a
shape the tracer fixed by mistake shows here."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from mmpost.data.batch import Batch
from mmpost.encoders.onnx_runtime import open_session

CHECK_TEXTS = ["ok", "this one is a little longer than the others, with a comma", "three words here",
               "#tags and @names in a post", "the longest text of the check sample, so that the padded batch is wider "
               "than any batch that was traced when the text tower was exported"]
CHECK_IMAGES = 3


def row_cosines(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of each row of ``a`` [N, ...] with the same row of ``b`` (rows flattened)."""
    a, b = a.reshape(len(a), -1).astype(np.float64), b.reshape(len(b), -1).astype(np.float64)
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(1) / np.maximum(norms, 1e-12)


@torch.inference_mode()
def _towers(predictor, folder: Path, manifest: dict) -> tuple[dict, list[torch.Tensor]]:
    inputs = predictor.text_tower.tokenize(CHECK_TEXTS)
    size = predictor.image_tower.image_size
    pixels = torch.rand(CHECK_IMAGES, 3, size, size, generator=torch.Generator().manual_seed(1)) * 2 - 1
    text, image = predictor.text_tower(inputs), predictor.image_tower(pixels)
    results = {}
    for part in ("text", "image"):
        for variant, entry in manifest["parts"][part].items():
            session = open_session(folder / entry["file"])
            if part == "text":
                feeds = {i.name: inputs[i.name].numpy() for i in session.get_inputs()}
                got, ref = session.run(["pooled"], feeds)[0], text.pooled.numpy()
            else:
                got, ref = session.run(["tokens"], {"pixels": pixels.numpy()})[0], image.tokens.numpy()
            results[f"{part}:{variant}"] = {"cosine_min": float(row_cosines(got, ref).min()), "rows": len(ref)}
    first = text.tokens[:, 0] if manifest["text_input"] == "first-token" else text.pooled
    img = image.tokens if manifest["image_input"] == "tokens" else image.pooled
    n = min(len(first), len(img))
    return results, [first[:n], img[:n], torch.arange(n) % 2 == 0]


@torch.inference_mode()
def check_export(predictor, folder: Path, manifest: dict) -> dict:
    """{"text:fp32": {"cosine_min", "rows"}, "image:fp32": ..., ("text:int8", "image:int8"), "head:fp32":
    {"cosine_min" (of the logits), "rows", "same_class"}}."""
    results, (text, image, has_image) = _towers(predictor, folder, manifest)
    zeros = torch.zeros(len(text), dtype=torch.long)
    output = predictor.model(Batch(index=zeros, labels=zeros, has_image=has_image, text_ids=zeros, image_ids=zeros,
                                   text_features=text, image_features=image))
    session = open_session(folder / manifest["parts"]["head"]["fp32"]["file"])
    got = session.run(None, {"text_features": text.numpy(), "image_features": image.numpy(),
                             "has_image": has_image.numpy()})
    cosines, same = [], True
    for k, task in enumerate(predictor.tasks):
        ref = output.task_logits[task.name].numpy()
        cosines.append(row_cosines(got[k], ref).min())
        same = same and bool((got[k].argmax(1) == ref.argmax(1)).all())
    results["head:fp32"] = {"cosine_min": float(min(cosines)), "rows": len(text), "same_class": same}
    return results
