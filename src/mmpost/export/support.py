"""What ONNX export covers: a family that reads the towers' features (a pooled or first-token text vector, a
pooled image vector or image tokens). Both towers are exported — frozen ones as packaged, fine-tuned ones with the
run's weights — and the model runs on their features. A family that runs every text token, the pixels or
precomputed regions inside the model (mmbt, vilt, lxmert) is not exported."""
from __future__ import annotations

from mmpost import registry
from mmpost.config import RunConfig

TEXT_INPUTS = ("pooled", "first-token")
IMAGE_INPUTS = ("pooled", "tokens")


def exportable_families() -> list[str]:
    """The registered families whose default config reads features that the export covers."""
    names = []
    for name in registry.names("model"):
        family = registry.get("model", name)
        text_input, image_input = family.text_input, family.image_input
        if text_input in TEXT_INPUTS and image_input in IMAGE_INPUTS:
            names.append(name)
    return sorted(names)


def check_exportable(cfg: RunConfig) -> tuple[str, str]:
    """(text input, image input) of the run's family, or an error naming the setting that rules export out."""
    family = registry.get("model", cfg.model.name)
    text_input, image_input = family.inputs(cfg.model)
    covered = ", ".join(exportable_families())
    if text_input not in TEXT_INPUTS:
        raise ValueError(f"model.name={cfg.model.name!r} reads every text token inside the model, which ONNX export "
                         f"does not cover; it covers families that read the towers' features: {covered}")
    if image_input not in IMAGE_INPUTS:
        setting = f"model.name={cfg.model.name!r}" + (f" with model.path={cfg.model.path!r}"
                                                      if getattr(cfg.model, "path", None) else "")
        raise ValueError(f"{setting} reads image {image_input} inside the model, which ONNX export does not cover; "
                         f"it covers families that read the towers' features: {covered}")
    return text_input, image_input
