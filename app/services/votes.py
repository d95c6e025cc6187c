"""Vote choice: which proxies vote and how, from what a request asks (a preset, a list of proxies, or
neither) and what a population has scored, and the vote itself over a population.

Every page that shows a vote (leaderboard, standing of POST /v1/scores, correlations, plot) chooses it
here, so the same request means the same voters and method everywhere.
"""

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from app.db.models import ScoringConfig
from app.services.configs import validate_proxies
from app.services.errors import InvalidInput
from app.services.population import Population, require_scored
from scorers import get_proxy
from scorers.presets import DEFAULT_PRESET, PRESETS, UnknownPresetError, VotePreset, get_preset
from scorers.voting import VOTE_METHODS, vote

CUSTOM_VOTE_METHOD = "mean_rank"
FALLBACK_PRESET = "mission"


@dataclass(frozen=True)
class VoteRequest:
    """Who votes and how, as asked: a named preset, an explicit list of proxies, or neither (the default).
    `method` overrides the preset's method; an explicit list is Borda-voted (mean_rank) unless told."""

    proxies: Sequence[str] | None = None
    preset: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class VoteChoice:
    """The vote actually taken: its voters, its method, and the preset it came from (None: a custom list)."""

    voters: tuple[str, ...]
    method: str
    preset: str | None


def validate_method(method: str) -> str:
    if method not in VOTE_METHODS:
        raise InvalidInput("method", f"unknown vote method {method!r}; known methods: {', '.join(VOTE_METHODS)}")
    return method


def check_vote_request(request: VoteRequest) -> None:
    """The checks that need no population, so a bad request is refused before anything is loaded."""
    if request.proxies is not None and request.preset is not None:
        raise InvalidInput("preset", "give either a preset or a list of proxies, not both")
    if request.preset is not None:
        _named_preset(request.preset)
    if request.method is not None:
        validate_method(request.method)


def checked_vote_request(request: VoteRequest, field: str) -> VoteRequest:
    """`check_vote_request` for a vote nested in a request body under `field` (errors name e.g.
    `vote.preset`), with its proxy names validated and de-duplicated, before anything is computed."""
    proxies = None if request.proxies is None else validate_proxies(list(request.proxies), f"{field}.proxies")
    try:
        check_vote_request(request)
    except InvalidInput as error:
        raise InvalidInput(f"{field}.{error.field}", error.message) from None
    return VoteRequest(proxies=proxies, preset=request.preset, method=request.method)


def choose_vote(population: Population, request: VoteRequest, config: ScoringConfig) -> VoteChoice:
    """The vote to take. A named preset needs all its proxies scored; by default the default preset votes
    when all its proxies are scored, else the `mission` preset, else every scored proxy (Borda)."""
    check_vote_request(request)
    if request.proxies is not None:
        voters = require_scored(population, request.proxies, config)
        return VoteChoice(voters, validate_method(request.method or CUSTOM_VOTE_METHOD), None)
    preset: VotePreset | None
    if request.preset is not None:
        preset = _scored_preset(population, _named_preset(request.preset), config)
    else:
        preset = next(
            (PRESETS[name] for name in (DEFAULT_PRESET, FALLBACK_PRESET) if _is_scored(population, PRESETS[name])),
            None,
        )
    if preset is None:
        return VoteChoice(population.proxies, validate_method(request.method or CUSTOM_VOTE_METHOD), None)
    return VoteChoice(preset.proxies, validate_method(request.method or preset.method), preset.name)


def requested_choice(request: VoteRequest) -> VoteChoice:
    """The vote a (checked) request names, the default preset when it names none; scores are not consulted."""
    if request.proxies is not None:
        return VoteChoice(tuple(request.proxies), request.method or CUSTOM_VOTE_METHOD, None)
    preset = _named_preset(request.preset or DEFAULT_PRESET)
    return VoteChoice(preset.proxies, request.method or preset.method, preset.name)


def default_vote_for(scored: set[str], request: VoteRequest) -> VoteRequest:
    """A request that names no voters gets the leaderboard's default, judged on one architecture's own
    scores: the default preset where it has all its voters, else `mission`, else every proxy it has (Borda).
    So a request that computed only some proxies is still ranked, by a vote its scores can take part in."""
    if request.proxies is not None or request.preset is not None:
        return request
    for name in (DEFAULT_PRESET, FALLBACK_PRESET):
        if set(PRESETS[name].proxies) <= scored:
            return VoteRequest(preset=name, method=request.method)
    return VoteRequest(proxies=tuple(sorted(scored)), method=request.method) if scored else request


def with_named_voters(proxies: Sequence[str], request: VoteRequest) -> tuple[str, ...]:
    """The proxies to compute for a vote: `proxies`, then the voters the request names (a named vote must be
    computable for the architecture; the default vote takes what was computed)."""
    if request.proxies is None and request.preset is None:
        return tuple(proxies)
    return tuple(dict.fromkeys((*proxies, *requested_choice(request).voters)))


def population_vote(population: Population, voters: Sequence[str], method: str) -> np.ndarray:
    """The vote of every architecture in the population (higher = better), memoised on the snapshot."""
    key = ("vote", tuple(voters), method)
    return population.memo(key, lambda: _compute_vote(population, voters, method))


def _compute_vote(population: Population, voters: Sequence[str], method: str) -> np.ndarray:
    columns = {name: population.column(name) for name in voters}
    directions = {name: get_proxy(name).higher_is_better for name in voters}
    try:
        return vote(columns, directions, method)
    except ValueError as error:
        raise InvalidInput("method", str(error)) from None


def _named_preset(name: str) -> VotePreset:
    try:
        return get_preset(name)
    except UnknownPresetError as error:
        raise InvalidInput("preset", str(error)) from None


def _is_scored(population: Population, preset: VotePreset) -> bool:
    return set(preset.proxies) <= set(population.proxies)


def _scored_preset(population: Population, preset: VotePreset, config: ScoringConfig) -> VotePreset:
    missing = [name for name in preset.proxies if name not in population.proxies]
    if missing:
        raise InvalidInput(
            "preset",
            f"preset {preset.name!r} votes with {', '.join(preset.proxies)}, but configuration "
            f"{config.fingerprint[:12]} has no {', '.join(missing)} scores; score them first or pick another preset",
        )
    return preset
