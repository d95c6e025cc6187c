"""The interface every search space implements, and the registry the service looks spaces up in.

Why one interface: the service, the CLI, the batch sampler, exports and reports handle any space by name
without knowing which it is. Adding a space is one package under `search_spaces/` whose class carries
`@register_space`, plus one import line in `search_spaces/__init__.py`.
"""

from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import ClassVar, TypeVar

import torch
from torch import nn

_ECHO_LIMIT = 100


class ModelOptionError(ValueError):
    """A model option a space refuses; `option` names it, so that the service can name the request's field."""

    def __init__(self, option: str, message: str) -> None:
        super().__init__(message)
        self.option = option


@dataclass(frozen=True)
class HyperParameter:
    """One integer option of a space's network (e.g. NB201's `channels`), with the bounds a request may ask."""

    default: int
    low: int
    high: int
    description: str

    def check(self, name: str, value: object) -> int:
        if isinstance(value, bool) or not isinstance(value, int) or not self.low <= value <= self.high:
            shown = repr(value) if len(repr(value)) <= _ECHO_LIMIT else repr(value)[: _ECHO_LIMIT - 3] + "..."
            raise ModelOptionError(name, f"{name} must be an integer from {self.low} to {self.high}, got {shown}")
        return value


@dataclass(frozen=True)
class NetworkSize:
    """What the memory a network needs to be scored grows with: its parameters, and the floats one forward
    (and loss) saves for backward, per image of the batch."""

    parameters: int
    saved_floats_per_image: int


class SearchSpace(ABC):
    """A family of architectures: how to read one, which ones are the same network, and how to build it.

    Architectures travel as text (the normalised form `parse` returns): it is what the database stores, what
    `POST /v1/scores` accepts as `arch`, and what a worker anywhere rebuilds the network from.
    """

    name: ClassVar[str]
    """Registry key and the `space` field of requests, e.g. "nb201"."""
    title: ClassVar[str]
    """Human name with the paper it comes from."""
    size: ClassVar[int | None]
    """Number of distinct architectures when finite, else None."""
    example: ClassVar[str]
    """One valid architecture in normalised form (docs, OpenAPI examples, tests)."""
    hyper_parameters: ClassVar[Mapping[str, HyperParameter]]
    """The network's integer options a scoring configuration may set, with their defaults."""
    datasets: ClassVar[tuple[str, ...]] = ("cifar10", "cifar100", "imagenet16-120")
    """Datasets this space's network is defined for (the first is the default)."""
    unsupported_proxies: ClassVar[Mapping[str, str]] = {}
    """Proxies refused up front for this space, each with the reason given to the user."""
    singleton_classes: ClassVar[bool] = False
    """True when no two architectures are isomorphic (`canonical_key` is the architecture itself): scores are
    then never shared between architectures, so the service need not store the space whole."""

    @abstractmethod
    def parse(self, arch: object) -> str:
        """The normalised text of `arch`; a ValueError whose message names the offending position."""

    @abstractmethod
    def canonical_key(self, arch: str) -> str:
        """The isomorphism class of a normalised architecture: equal keys mean the same computed function,
        so the class is scored once."""

    @abstractmethod
    def build_model(self, arch: str, num_classes: int, **hyper_parameters: int) -> nn.Module:
        """A freshly initialised network for a normalised architecture."""

    @abstractmethod
    def sample(self, n: int, seed: int) -> list[str]:
        """`n` distinct valid architectures in normalised form, the same for the same seed."""

    def enumerate(self) -> Sequence[str] | None:
        """Every architecture in a fixed order when the space is small enough to list, else None."""
        return None

    def naslib_encoding(self, arch: str) -> str | None:
        """NASLib's encoding of the architecture where NASLib has one for this space, else None."""
        return None

    def model_options(self, given: Mapping[str, object]) -> dict[str, int]:
        """The full, checked hyper-parameters for a request: defaults filled in, unknown names refused (a
        ModelOptionError, a ValueError naming the option)."""
        unknown = sorted(set(given) - set(self.hyper_parameters))
        if unknown:
            known = ", ".join(self.hyper_parameters) or "none"
            raise ModelOptionError(
                unknown[0], f"unknown model option {unknown[0]!r} for space {self.name}; known: {known}"
            )
        return {
            name: parameter.check(name, given.get(name, parameter.default))
            for name, parameter in self.hyper_parameters.items()
        }

    def largest_architecture(self) -> str:
        """The architecture whose network needs the most memory, so that a memory bound computed from it holds
        for every architecture of the space. Override it: the default, `example`, bounds only itself."""
        return self.example

    def network_size(self, num_classes: int, image_size: int, **hyper_parameters: int) -> NetworkSize:
        """The size of the largest network (`largest_architecture`) under these options, for the service's
        memory bound. By default the network is built on PyTorch's `meta` device (no memory is allocated)
        and one image is passed through it and a cross-entropy loss while autograd's saved-tensor hooks count
        what is kept for backward; a space may override this with an exact formula."""
        with torch.device("meta"):
            network = self.build_model(self.largest_architecture(), num_classes, **hyper_parameters)
        parameters = {parameter.untyped_storage()._cdata for parameter in network.parameters()}
        saved: dict[int, int] = {}

        def count(tensor: torch.Tensor) -> torch.Tensor:
            storage = tensor.untyped_storage()
            if storage._cdata not in parameters:
                saved[storage._cdata] = storage.nbytes() // tensor.element_size()
            return tensor

        image = torch.zeros(1, 3, image_size, image_size, device="meta")
        with torch.autograd.graph.saved_tensors_hooks(count, lambda tensor: tensor):
            logits = network(image)
            nn.functional.cross_entropy(logits, torch.zeros(1, dtype=torch.long, device="meta"))
        return NetworkSize(sum(parameter.numel() for parameter in network.parameters()), sum(saved.values()))


SPACES: dict[str, SearchSpace] = {}

SpaceClass = TypeVar("SpaceClass", bound=type[SearchSpace])


def register_space(cls: SpaceClass) -> SpaceClass:
    """Class decorator: instantiate the space once and make it known under its `name`."""
    if cls.name in SPACES:
        raise ValueError(f"search space {cls.name!r} is registered twice")
    SPACES[cls.name] = cls()
    return cls


def get_space(name: str) -> SearchSpace:
    """The registered space called `name`; KeyError naming the known spaces otherwise."""
    try:
        return SPACES[name]
    except KeyError:
        raise KeyError(f"unknown search space {name!r}; known spaces: {', '.join(sorted(SPACES))}") from None
