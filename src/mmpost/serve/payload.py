"""Request content → posts to predict, with the text and byte limits checked before anything is decoded.

Two ways in: JSON (the image base64-encoded; ``/predict`` and ``/predict/batch``) and a multipart form (the
image as a file part; ``/predict``). Both end as :class:`PostInput`; images are decoded later, by the service.
"""
from __future__ import annotations

import base64
import binascii
import re
from dataclasses import dataclass

from starlette.datastructures import UploadFile
from starlette.requests import Request

from mmpost.serve.errors import RequestRejected
from mmpost.serve.limits import OPTION, ServeLimits
from mmpost.serve.schemas import PostIn

FORM_FIELDS = ("id", "text", "image")
_DATA_URL = re.compile(r"^data:[^,]{0,200};base64,", re.IGNORECASE)


@dataclass
class PostInput:
    """One post as received: its image still the file's bytes."""
    id: str | None
    text: str
    image: bytes | None
    field: str          # how messages name this post: "" for /predict, "posts[3]." in a batch


def check_text(text: str, field: str, limits: ServeLimits) -> str:
    if len(text) > limits.max_text_chars:
        raise RequestRejected(422, f"{field}: the text has {len(text):,} characters; the limit is "
                                   f"{limits.max_text_chars:,} ({OPTION['max_text_chars']})")
    return text


def check_image_bytes(size: int, field: str, limits: ServeLimits) -> None:
    if size > limits.max_image_bytes:
        raise RequestRejected(413, f"{field}: the image file has {size:,} bytes; the limit is "
                                   f"{limits.max_image_bytes:,} ({OPTION['max_image_bytes']})")
    if size == 0:
        raise RequestRejected(422, f"{field}: the image file is empty (0 bytes)")


def decode_base64_image(value: str, field: str, limits: ServeLimits) -> bytes:
    """Standard base64 (line breaks tolerated, a ``data:`` URL prefix stripped) → bytes. The size is checked
    from the encoded length first, so an oversized image is refused without decoding it."""
    compact = "".join(_DATA_URL.sub("", value.strip(), count=1).split())
    estimate = len(compact) * 3 // 4 - compact[-2:].count("=")
    check_image_bytes(estimate, field, limits)
    try:
        data = base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError) as e:
        raise RequestRejected(422, f"{field}: not valid base64 ({e}); send the image file's bytes base64-encoded "
                                   "with the standard alphabet") from None
    check_image_bytes(len(data), field, limits)
    return data


def _need_content(post: PostInput) -> PostInput:
    if not post.text.strip() and post.image is None:
        raise RequestRejected(422, f"{post.field or 'post'}: give a text, an image or both; this post has neither")
    return post


def from_json(item: PostIn, field: str, limits: ServeLimits) -> PostInput:
    """A validated JSON post; ``field`` prefixes messages (``"posts[3]."``)."""
    text = check_text(item.text, f"{field}text", limits)
    image = decode_base64_image(item.image, f"{field}image", limits) if item.image else None
    return _need_content(PostInput(None if item.id is None else str(item.id), text, image, field))


def _one_text_field(form, name: str) -> str | None:
    values = form.getlist(name)
    if len(values) > 1:
        raise RequestRejected(422, f"{name}: given {len(values)} times; give it once")
    if values and not isinstance(values[0], str):
        raise RequestRejected(422, f"{name}: must be a text field, not a file")
    return values[0] if values else None


async def from_form(request: Request, limits: ServeLimits) -> PostInput:
    """A form with ``text``, an optional ``image`` file (multipart only) and an optional ``id``. The whole body is
    already bounded by the server's body limit, so a text field may be as large as that; its length in
    characters is checked here, with a clearer message than the form parser's."""
    async with request.form(max_files=2, max_fields=8, max_part_size=limits.max_body_bytes) as form:
        unknown = sorted(set(form.keys()) - set(FORM_FIELDS))
        if unknown:
            raise RequestRejected(422, f"unknown form field(s) {', '.join(unknown)}; a post has the fields "
                                       f"{', '.join(FORM_FIELDS)}")
        post_id = _one_text_field(form, "id")
        text = check_text(_one_text_field(form, "text") or "", "text", limits)
        parts = form.getlist("image")
        if len(parts) > 1:
            raise RequestRejected(422, "image: one image per post (several posts: POST /predict/batch)")
        image = None
        if parts and isinstance(parts[0], str):
            if parts[0]:
                raise RequestRejected(422, "image: must be a file part (curl -F image=@photo.jpg); a base64 "
                                           "image goes in a JSON body")
        elif parts:
            upload: UploadFile = parts[0]
            if upload.size is not None and upload.size > limits.max_image_bytes:
                check_image_bytes(upload.size, "image", limits)
            data = await upload.read(limits.max_image_bytes + 1)
            if data or upload.filename:          # a browser form with no file chosen sends an empty, nameless part
                check_image_bytes(len(data), "image", limits)
                image = data
    return _need_content(PostInput(post_id, text, image, ""))
