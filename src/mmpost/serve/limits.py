"""What one request may carry. Each limit guards one resource of a shared server, and each has a CLI option."""
from __future__ import annotations

from dataclasses import asdict, dataclass, fields

MIB = 1024 * 1024

# The CLI option that raises each limit; error messages name it, so a client knows what the operator can change.
OPTION = {
    "max_body_bytes": "--max-body-bytes",
    "max_image_bytes": "--max-image-bytes",
    "max_image_pixels": "--max-image-pixels",
    "max_text_chars": "--max-text-chars",
    "max_batch": "--max-batch",
}


@dataclass(frozen=True)
class ServeLimits:
    """``max_body_bytes`` bounds what a request makes the server hold in memory before anything is parsed;
    ``max_image_bytes`` and ``max_image_pixels`` bound decoding one image (a small PNG can declare a huge
    canvas: the pixel count is checked from the header, before decoding); ``max_text_chars`` bounds
    tokenisation (the model reads at most its ``max_length`` tokens anyway); ``max_batch`` bounds one forward
    pass, and so how long one request holds the model while others wait."""

    max_body_bytes: int = 32 * MIB
    max_image_bytes: int = 10 * MIB
    max_image_pixels: int = 25_000_000
    max_text_chars: int = 10_000
    max_batch: int = 64

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{OPTION[f.name]} must be a positive whole number, got {value!r}")

    def as_dict(self) -> dict[str, int]:
        return asdict(self)
