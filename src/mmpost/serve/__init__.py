"""``mmpost serve RUN_DIR``: a trained run behind an HTTP API (FastAPI + uvicorn).

    from mmpost.serve.app import create_app
    from mmpost.serve.limits import ServeLimits
    app = create_app("runs/my-run", ServeLimits(max_batch=16))     # any ASGI server can run it

Nothing is imported here, so that the CLI can read :mod:`mmpost.serve.limits` without loading FastAPI.
"""
