"""Search spaces the service can score, looked up by name in `SPACES`."""

from types import ModuleType

from search_spaces import nb201

SPACES: dict[str, ModuleType] = {"nb201": nb201}

__all__ = ["SPACES", "nb201"]
