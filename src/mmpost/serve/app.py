"""The HTTP API over one trained run: ``POST /predict``, ``POST /predict/batch``, ``GET /health``, ``GET /model``,
and the OpenAPI docs at ``/docs`` (served from the package: they work without internet).

Every refusal is ``{"detail": "<field>: <what is wrong>"}`` with 413 (over a size limit), 415 (neither JSON nor
a form) or 422 (unusable content: bad base64, a corrupt image, an unknown field, too long a text).
"""
from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi_offline import FastAPIOffline
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool

from mmpost import __version__
from mmpost.apps.predictor import Predictor
from mmpost.serve.body_limit import BodyLimit
from mmpost.serve.errors import RequestRejected
from mmpost.serve.limits import OPTION, ServeLimits
from mmpost.serve.payload import PostInput, from_form, from_json
from mmpost.serve.schemas import BatchIn, ErrorOut, HealthOut, ModelOut, PostIn, prediction_models
from mmpost.serve.service import PredictionService

REFUSALS = {413: {"model": ErrorOut, "description": "Over a size limit"},
            415: {"model": ErrorOut, "description": "Neither JSON nor a form"},
            422: {"model": ErrorOut, "description": "Unusable content"}}

# /predict reads its body itself (JSON or a form), so its request body is described here for the docs.
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "properties": {
        "text": {"type": "string", "description": "The post's text (may be left out when an image is given)."},
        "image": {"type": "string", "format": "binary", "description": "The image file (optional)."},
        "id": {"type": "string", "description": "Echoed back (optional)."}}}},
    "application/json": {"schema": {"$ref": "#/components/schemas/PostIn"}},
    "application/x-www-form-urlencoded": {"schema": {"type": "object", "required": ["text"], "properties": {
        "text": {"type": "string"}, "id": {"type": "string"}}}},
}}}


def error_location(loc: tuple) -> str:
    """A pydantic error location as a client reads it: ("body", "posts", 3, "image") → "posts[3].image"."""
    out = ""
    for part in (p for i, p in enumerate(loc) if not (i == 0 and p == "body")):
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out or "body"


def validation_message(errors: list[dict]) -> str:
    parts = []
    for e in errors[:5]:
        if e.get("type") == "json_invalid":     # its location is a character offset, not a field
            parts.append(f"body: not valid JSON ({e.get('ctx', {}).get('error', e['msg'])})")
        else:
            parts.append(f"{error_location(tuple(e.get('loc', ())))}: {e['msg']}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "; ".join(parts) + more


def media_type(request: Request) -> str:
    return request.headers.get("content-type", "").split(";")[0].strip().lower()


def is_json(media: str) -> bool:
    return media == "application/json" or media.endswith("+json")


def create_app(run: str | Path | Predictor, limits: ServeLimits | None = None) -> FastAPI:
    """Load the run once (or take a loaded :class:`Predictor`), run one warm-up prediction, and build the app."""
    limits = limits or ServeLimits()
    predictor = run if isinstance(run, Predictor) else Predictor(run)
    service = PredictionService(predictor, limits)
    service.warm_up()
    app = new_app(service, limits)
    add_error_handlers(app)
    add_predict_routes(app, service, limits)
    add_status_routes(app, service)
    return app


def new_app(service: PredictionService, limits: ServeLimits) -> FastAPI:
    """The bare application: its title and description for the docs, the service, the body limit."""
    tasks = "; ".join(f"**{t.name}** ({', '.join(t.labels)}{'; several at once' if t.multi_label else ''})"
                      for t in service.predictor.tasks)
    app = FastAPIOffline(
        title="mmpost", version=__version__,
        description=f"Predicts {tasks} for posts with a text and an image, with the run `{service.run_name}`.")
    app.state.service = service
    app.add_middleware(BodyLimit, max_bytes=limits.max_body_bytes,
                       message=f"the request body is larger than {limits.max_body_bytes:,} bytes "
                               f"({OPTION['max_body_bytes']})")
    return app


def add_error_handlers(app: FastAPI) -> None:
    """Every refusal answers ``{"detail": message}``: a :class:`RequestRejected` with its own status, a body the
    framework could not validate with 415 (not JSON at all) or 422."""

    @app.exception_handler(RequestRejected)
    async def rejected(request: Request, exc: RequestRejected) -> JSONResponse:
        return JSONResponse({"detail": exc.message}, status_code=exc.status)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> JSONResponse:
        media = media_type(request)
        if request.method == "POST" and not is_json(media):     # the framework did not even try to parse it
            return JSONResponse({"detail": f"send application/json, not {media or 'a body without a content type'!r}"},
                                status_code=415)
        return JSONResponse({"detail": validation_message(list(exc.errors()))}, status_code=422)


async def read_post(request: Request, limits: ServeLimits) -> PostInput:
    """The one post of a ``/predict`` body: a form (multipart, or url-encoded without a file) or JSON."""
    media = media_type(request)
    if media in ("multipart/form-data", "application/x-www-form-urlencoded"):    # the latter: no file
        return await from_form(request, limits)
    if is_json(media):
        try:
            item = PostIn.model_validate_json(await request.body())
        except ValidationError as e:
            raise RequestRejected(422, validation_message(e.errors())) from None
        return await run_in_threadpool(from_json, item, "", limits)      # base64 decoding: off the event loop
    raise RequestRejected(415, f"send multipart/form-data (text + image file) or application/json "
                               f"(text + base64 image), not {media or 'a body without a content type'!r}")


def check_batch_size(n_posts: int, limits: ServeLimits) -> None:
    if n_posts > limits.max_batch:
        raise RequestRejected(413, f"posts: {n_posts:,} posts; the limit is {limits.max_batch:,} per "
                                   f"batch ({OPTION['max_batch']})")
    if not n_posts:
        raise RequestRejected(422, "posts: the batch is empty")


def add_predict_routes(app: FastAPI, service: PredictionService, limits: ServeLimits) -> None:
    """``/predict`` and ``/predict/batch``; their answers are documented for this run's number of tasks."""
    one_out, batch_out = prediction_models(len(service.predictor.tasks))

    @app.post("/predict", response_model=one_out, responses=REFUSALS, openapi_extra=PREDICT_BODY,
              summary="Predict one post")
    async def predict(request: Request) -> dict:
        """A multipart form (`text`, an `image` file, optional `id`; a form without a file may also be sent
        url-encoded) or JSON (`text`, a base64 `image`, optional `id`). Either part may be left out, not both."""
        post = await read_post(request, limits)
        return (await run_in_threadpool(service.predict, [post]))[0]

    @app.post("/predict/batch", response_model=batch_out, responses=REFUSALS, summary="Predict several posts")
    async def predict_batch(body: BatchIn) -> dict:
        """JSON `{"posts": [{text, image (base64), id}, ...]}`, at most the server's `max_batch` posts. A bad
        post rejects the whole batch; the message names it."""
        check_batch_size(len(body.posts), limits)

        def decode_and_predict() -> list[dict]:      # in a worker thread: base64 decoding stays off the event loop
            return service.predict([from_json(item, f"posts[{i}].", limits) for i, item in enumerate(body.posts)])

        return {"predictions": await run_in_threadpool(decode_and_predict)}


def add_status_routes(app: FastAPI, service: PredictionService) -> None:
    @app.get("/health", response_model=HealthOut, summary="Is the model loaded")
    async def health() -> dict:
        """The model is loaded and has made a warm-up prediction before the server accepts connections, so a
        server that answers is ready."""
        predictor = service.predictor
        return {"status": "ok", "run": service.run_name, "task": predictor.task,
                "tasks": [t.name for t in predictor.tasks]}

    @app.get("/model", response_model=ModelOut, summary="Labels, training config and limits")
    async def model() -> dict:
        return service.describe()
