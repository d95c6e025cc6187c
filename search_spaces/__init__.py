"""Search spaces the service can score, each a `SearchSpace` registered by name in `SPACES`.

Adding a space: one package here whose class carries `@register_space`, and one import line below.
"""

from search_spaces import darts, nats_sss, nb101, nb201, onnx
from search_spaces.base import SPACES, HyperParameter, ModelOptionError, NetworkSize, SearchSpace, get_space

DEFAULT_SPACE = nb201.NB201Space.name
"""The space a request means when it names none."""

__all__ = [
    "DEFAULT_SPACE",
    "SPACES",
    "HyperParameter",
    "ModelOptionError",
    "NetworkSize",
    "SearchSpace",
    "darts",
    "get_space",
    "nats_sss",
    "nb101",
    "nb201",
    "onnx",
]
