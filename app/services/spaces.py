"""Search spaces and their architectures. Every architecture is stored once under its normalised string
with its canonical (isomorphism) key; enumerable spaces are seeded whole so that a score computed for one
member of an isomorphism class can be recorded for all members."""

import random
from collections.abc import Sequence
from types import ModuleType

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Architecture, SearchSpace
from app.db.upsert import insert_ignore
from app.services.errors import InvalidInput, NotFound

# Enumerate-and-seed only spaces this small; larger ones get their architectures on demand.
MAX_SEEDED_ARCHITECTURES = 100_000


def space_module(name: str) -> ModuleType:
    from search_spaces import SPACES

    try:
        return SPACES[name]
    except KeyError:
        known = ", ".join(sorted(SPACES))
        raise InvalidInput("space", f"unknown search space {name!r}; known spaces: {known}") from None


def normalise(module: ModuleType, arch: object, field: str = "arch") -> str:
    """The normalised string of `arch`, or a 422 naming `field` with the parser's message."""
    try:
        return module.parse(arch).arch_str
    except (ValueError, TypeError) as error:
        raise InvalidInput(field, str(error)) from None


def ensure_space(session: Session, name: str) -> SearchSpace:
    """The space's row, created on first use."""
    space_module(name)
    insert_ignore(session, SearchSpace.__table__, [{"name": name}], unique=["name"])
    return session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one()


def stored_space(session: Session, name: str) -> SearchSpace:
    """The row of a known space with architectures stored; NotFound while it has none (before start-up
    seeded it), so a report or listing of it is not mistaken for an empty result."""
    space_module(name)
    space = session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one_or_none()
    if space is None:
        raise NotFound("space", f"no architectures of search space {name!r} are stored yet")
    return space


def seed_space(session: Session, name: str) -> SearchSpace:
    """The space's row with all its architectures stored (when enumerable), so that every member of an
    isomorphism class exists to receive the class's score. Run at start-up; a no-op once complete."""
    space = ensure_space(session, name)
    seed_architectures(session, space, space_module(name))
    return space


def seed_architectures(session: Session, space: SearchSpace, module: ModuleType) -> None:
    """Insert every architecture of an enumerable space once; cheap no-op when already complete."""
    all_archs = getattr(module, "all_archs", None)
    if all_archs is None:
        return
    archs = all_archs()
    if len(archs) > MAX_SEEDED_ARCHITECTURES or count_architectures(session, space.id) >= len(archs):
        return
    rows = [{"space_id": space.id, "arch": arch, "canonical_key": module.canonical_key(arch)} for arch in archs]
    insert_ignore(session, Architecture.__table__, rows, unique=["space_id", "arch"])


def count_architectures(session: Session, space_id: int) -> int:
    return session.execute(select(func.count()).where(Architecture.space_id == space_id)).scalar_one()


def get_or_create_architectures(
    session: Session, space: SearchSpace, archs: Sequence[object], field: str = "archs", *, indexed: bool = True
) -> list[Architecture]:
    """Rows for `archs` (any accepted spelling), de-duplicated in request order; unknown ones are added.
    Errors name `field[position]` (or just `field` when not `indexed`)."""
    module = space_module(space.name)
    strings = [normalise(module, arch, f"{field}[{i}]" if indexed else field) for i, arch in enumerate(archs)]
    return architectures_for_strings(session, space, strings)


def architectures_for_strings(session: Session, space: SearchSpace, arch_strings: Sequence[str]) -> list[Architecture]:
    """Rows for normalised strings, de-duplicated in order; only strings not stored yet get a canonical key
    computed and a row inserted."""
    found = architectures_by_string(session, space.id, arch_strings)
    missing = [arch for arch in dict.fromkeys(arch_strings) if arch not in found]
    if missing:
        module = space_module(space.name)
        rows = [{"space_id": space.id, "arch": a, "canonical_key": module.canonical_key(a)} for a in missing]
        insert_ignore(session, Architecture.__table__, rows, unique=["space_id", "arch"])
        found.update(architectures_by_string(session, space.id, missing))
    return [found[arch] for arch in dict.fromkeys(arch_strings)]


def architectures_by_string(session: Session, space_id: int, arch_strings: Sequence[str]) -> dict[str, Architecture]:
    found: dict[str, Architecture] = {}
    unique = list(dict.fromkeys(arch_strings))
    for start in range(0, len(unique), 500):
        chunk = unique[start : start + 500]
        query = select(Architecture).where(Architecture.space_id == space_id, Architecture.arch.in_(chunk))
        found.update((row.arch, row) for row in session.execute(query).scalars())
    return found


def enumerate_space(name: str, field: str = "space") -> list[str]:
    module = space_module(name)
    if not hasattr(module, "all_archs"):
        raise InvalidInput(field, f"search space {name!r} cannot be enumerated; list the architectures instead")
    return module.all_archs()


def sample_architectures(name: str, count: int, seed: int, field: str = "sample.n") -> list[str]:
    """`count` distinct architectures drawn with `seed`: one draw for the API, the CLI and the benchmarks,
    so the same (count, seed) always names the same batch."""
    population = enumerate_space(name, field)
    if not 1 <= count <= len(population):
        raise InvalidInput(field, f"must be between 1 and {len(population)} (the size of {name}), got {count}")
    return random.Random(seed).sample(population, count)


def all_architectures(session: Session, space: SearchSpace) -> list[Architecture]:
    query = select(Architecture).where(Architecture.space_id == space.id).order_by(Architecture.id)
    return list(session.execute(query).scalars())


def class_members(session: Session, space_id: int, canonical_key: str) -> list[Architecture]:
    """All stored architectures isomorphic to each other (same canonical key), ordered by string."""
    query = (
        select(Architecture)
        .where(Architecture.space_id == space_id, Architecture.canonical_key == canonical_key)
        .order_by(Architecture.arch)
    )
    return list(session.execute(query).scalars())


def get_architecture(session: Session, architecture_id: int) -> Architecture:
    architecture = session.get(Architecture, architecture_id)
    if architecture is None:
        raise NotFound("id", f"no architecture with id {architecture_id}")
    return architecture
