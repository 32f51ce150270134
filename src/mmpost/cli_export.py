"""``mmpost export``: a trained run's towers and model as files another runtime reads (ONNX)."""
from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from mmpost.cli_common import app, fail, setup_logging, table

FORMATS = ("onnx",)


@app.command()
def export(
    run_dir: Annotated[Path, typer.Argument(help="A finished run folder.", exists=True, file_okay=False)],
    format: Annotated[str, typer.Option("--format", help="What to export to: onnx.")] = "onnx",
    int8: Annotated[bool, typer.Option("--int8", help="Also write an int8 copy of the text tower (onnxruntime dynamic quantization, per-channel), read by --runtime onnx-int8; the image tower stays fp32.")] = False,
    verbose: Annotated[bool, typer.Option("--verbose", "-v")] = False,
) -> None:
    """Export a run to ONNX: `RUN/onnx/text.onnx` (the text tower, fine-tuned weights included), `image.onnx`
    (the image tower) and `head.onnx` (the model on the towers' features), listed in `RUN/onnx/export.json` with
    each part's lowest cosine to torch on a check sample. Then `mmpost predict RUN --data F --runtime onnx` and
    `mmpost serve RUN --runtime onnx` compute with onnxruntime (pip install 'mmpost[onnx]').

    Covered: families that read the towers' pooled vector, first text token or image tokens (conc, att,
    emoticon). Not covered: families that run every text token or the pixels inside the model (mmbt, vilt,
    lxmert): the export stops and names the setting.
    """
    setup_logging(verbose)
    if format not in FORMATS:
        fail(ValueError(f"--format must be one of {', '.join(FORMATS)}, got {format!r}"))
    from mmpost.export.onnx_export import export_onnx
    try:
        manifest = export_onnx(run_dir, int8=int8)
    except (ValueError, FileNotFoundError, ImportError) as e:
        fail(e)
    rows = [[name, entry["file"], f"{manifest['check'][f'{name}:{variant}']['cosine_min']:.6f}"]
            for name in ("text", "image", "head")
            for variant, entry in manifest["parts"][name].items()]
    table(f"{run_dir}/onnx", ["part", "file", "lowest cosine to torch"], rows)
    if not manifest["check"]["head:fp32"]["same_class"]:
        typer.secho("the ONNX head changed a predicted class on the check sample", fg=typer.colors.YELLOW, err=True)
