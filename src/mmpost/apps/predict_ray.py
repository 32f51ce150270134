"""``mmpost predict RUN --data FILE --engine ray [--address ADDR]``: the file read by Ray Data (CSV, JSONL or
Parquet), predicted by :class:`mmpost.ray.Predictor` on ``workers`` Ray workers of a local or existing cluster, and
written as Parquet files into the folder ``out`` (written beside it, then renamed into place). The rows keep the
file's order."""
from __future__ import annotations

import os
import shutil
from pathlib import Path
from typing import Any

__all__ = ["predict_with_ray", "read_posts"]

_READERS = {".csv": "read_csv", ".tsv": "read_csv", ".jsonl": "read_json", ".ndjson": "read_json",
            ".parquet": "read_parquet"}


def _ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ImportError('--engine ray needs Ray: pip install "mmpost[ray]"') from None
    return ray


def read_posts(ray: Any, data: str) -> Any:
    """A Ray dataset of the file's rows, every column read as text (ids stay as written)."""
    import pyarrow as pa
    ext = Path(data).suffix.lower()
    if ext not in _READERS:
        raise ValueError(f"{data}: --engine ray reads .csv, .tsv, .jsonl and .parquet files, not "
                         f"{ext or 'a file without an extension'}")
    if ext in (".csv", ".tsv"):
        from pyarrow import csv as pa_csv
        names = pa_csv.open_csv(data).schema.names
        convert = pa_csv.ConvertOptions(column_types={n: pa.string() for n in names})
        parse = pa_csv.ParseOptions(delimiter="\t" if ext == ".tsv" else ",")
        return ray.data.read_csv(data, convert_options=convert, parse_options=parse)
    return getattr(ray.data, _READERS[ext])(data)


def predict_with_ray(run_dir: str | Path, data: str, out: str | Path, *, address: str | None = None,
                     workers: int = 1, chunk: int = 1024, batch_size: int = 128,
                     image_root: str | None = None) -> dict[str, int]:
    """Predict every row of ``data`` on Ray; returns ``posts`` and ``without_image``. Relative image paths start
    from ``image_root``, else the run's ``data.columns.image_root``, else the data file's folder (as ``mmpost
    predict`` reads them); the folder must be at that path on every Ray machine."""
    ray = _ray()
    from mmpost.ray import Predictor
    run_dir, out = Path(run_dir).resolve(), Path(out)
    if not Path(data).exists() and "://" not in data:
        raise FileNotFoundError(f"data file not found: {data}")
    started = not ray.is_initialized()
    if started:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, configure_logging=False)
    try:
        ray.data.DataContext.get_current().execution_options.preserve_order = True
        ray.data.DataContext.get_current().enable_progress_bars = False
        rows = read_posts(ray, data)
        kwargs = {"run_dir": str(run_dir), "batch_size": batch_size,
                  "image_root": _image_root(run_dir, data, image_root)}
        # a worker holds up to a CPU, but one CPU stays free for the read and write tasks (each asks for a whole
        # one), or the pipeline stalls with every CPU held by a worker waiting for input
        cpus = float(ray.cluster_resources().get("CPU", 1.0))
        per_worker = min(1.0, max(0.0, (cpus - 1.0) / workers))
        probs = rows.map_batches(Predictor, fn_constructor_kwargs=kwargs, num_cpus=per_worker,
                                 compute=ray.data.ActorPoolStrategy(size=workers), batch_size=chunk,
                                 batch_format="pandas")
        tmp = out.with_name(f".{out.name}.writing")
        shutil.rmtree(tmp, ignore_errors=True)
        probs.write_parquet(str(tmp))
        counts = _counts(tmp)
        if out.exists():
            shutil.rmtree(out) if out.is_dir() else out.unlink()
        os.replace(tmp, out)
        return counts
    finally:
        if started:
            ray.shutdown()


def _image_root(run_dir: Path, data: str, given: str | None) -> str | None:
    from mmpost.apps.prepare import column_mapping
    from mmpost.config import load_config
    if given is not None:
        return str(Path(given).expanduser().resolve())
    if column_mapping(load_config(run_dir / "config.yaml").data).image_root is not None:
        return None
    return str(Path(data).resolve().parent) if "://" not in data else None


def _counts(folder: Path) -> dict[str, int]:
    import pyarrow.parquet as pq
    table = pq.read_table(folder, columns=["image_used"])
    used = table.column("image_used").to_pylist()
    return {"posts": len(used), "without_image": sum(not u for u in used), "resumed": 0}
