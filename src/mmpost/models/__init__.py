from . import emoticon  # noqa: F401  (registers the emoticon family)
