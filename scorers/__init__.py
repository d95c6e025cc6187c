"""Zero-cost proxies for training-free NAS: a registry of proxies scored through one shared-pass context.

from scorers import score_model
score_model(model, inputs, targets, proxies=("snip", "grasp", "synflow"))  # -> {name: float}
"""

from scorers import proxies as _builtin_proxies  # noqa: F401  (registers the built-in proxies)
from scorers.context import ScoringContext
from scorers.presets import DEFAULT_PROXIES
from scorers.registry import ProxyInfo, UnknownProxyError, get_proxy, list_proxies, register_proxy
from scorers.scoring import ProxyResult, score_model, score_model_detailed

__all__ = [
    "DEFAULT_PROXIES",
    "ProxyInfo",
    "ProxyResult",
    "ScoringContext",
    "UnknownProxyError",
    "get_proxy",
    "list_proxies",
    "register_proxy",
    "score_model",
    "score_model_detailed",
]
