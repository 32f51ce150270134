from . import emoticon, fusions  # noqa: F401  (registers the emoticon family and every fusion)
