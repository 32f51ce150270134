"""Run the API with uvicorn: one process, the model loaded once, requests served by its thread pool."""
from __future__ import annotations

from pathlib import Path

import uvicorn

from mmpost.apps.predictor import Predictor
from mmpost.serve.app import create_app
from mmpost.serve.limits import ServeLimits


def run_server(run_dir: str | Path, *, host: str = "127.0.0.1", port: int = 8000, limits: ServeLimits | None = None,
               max_connections: int = 64, log_level: str = "info", access_log: bool = True,
               runtime: str = "torch") -> None:
    """Serve until interrupted. One worker process on purpose: a second would hold a second copy of the weights
    and compete for the same cores (see :mod:`mmpost.serve.service`). Past ``max_connections`` open connections
    uvicorn answers 503 at once instead of queueing without bound. ``runtime``: torch, onnx or onnx-int8
    (:class:`~mmpost.apps.predictor.Predictor`)."""
    if max_connections < 1:
        raise ValueError(f"--max-connections must be at least 1, got {max_connections}")
    app = create_app(Predictor(run_dir, runtime=runtime), limits)
    uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=access_log,
                limit_concurrency=max_connections, server_header=False)
