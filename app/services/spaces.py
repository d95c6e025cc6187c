"""Search spaces and their architectures. Every architecture is stored once under its normalised string
with its canonical (isomorphism) key.

Which spaces are stored whole, and when: a score computed for one member of an isomorphism class is recorded
for every stored member, so a space whose classes hold several architectures (NAS-Bench-201's 15,625 cells
fall into 6,466 classes) is stored whole at start-up, where it is small enough to enumerate; then the
leaderboard's cells, per-cell reports and observations see every member of a scored class. A space whose
every architecture is its own class (`singleton_classes`, e.g. the NATS-Bench size space) shares nothing,
so nothing is gained by storing it ahead: its architectures are stored as they are used, and a batch of
`all` of them stores the rest then. That also keeps every server start (the tests start many) from writing
32,768 rows it may never need."""

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.db.models import Architecture, SearchSpace
from app.db.upsert import insert_ignore
from app.services.errors import InvalidInput, NotFound
from search_spaces import SPACES
from search_spaces import SearchSpace as Space
from search_spaces.onnx import OnnxSpace

# Enumerate-and-seed only spaces this small; larger ones get their architectures on demand.
MAX_SEEDED_ARCHITECTURES = 100_000
UPLOADED_NOT_DRAWN = "onnx architectures are uploaded, not drawn: list them in archs (the space cannot be sampled)"


def uploaded(space: Space) -> bool:
    """Whether the space's architectures are uploaded networks (`onnx`): each is stored with its file, none
    is drawn or listed."""
    return isinstance(space, OnnxSpace)


def lookup_space(name: str, field: str = "space") -> Space:
    """The registered space called `name`, or a 422 naming `field` and the known spaces."""
    try:
        return SPACES[name]
    except KeyError:
        known = ", ".join(sorted(SPACES))
        raise InvalidInput(field, f"unknown search space {name!r}; known spaces: {known}") from None


def normalise(space: Space, arch: object, field: str = "arch") -> str:
    """The normalised text of `arch`, or a 422 naming `field` with the parser's message."""
    try:
        return space.parse(arch)
    except (ValueError, TypeError) as error:
        raise InvalidInput(field, str(error)) from None


def seeded_at_start(space: Space) -> bool:
    """Whether start-up stores the whole space (see the module's docstring)."""
    return not space.singleton_classes and space.size is not None and space.size <= MAX_SEEDED_ARCHITECTURES


def ensure_space(session: Session, name: str) -> SearchSpace:
    """The space's row, created on first use."""
    lookup_space(name)
    insert_ignore(session, SearchSpace.__table__, [{"name": name}], unique=["name"])
    return session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one()


def stored_space(session: Session, name: str) -> SearchSpace:
    """The row of a known space with architectures stored; NotFound while it has none (before start-up
    seeded it, or before its first architecture was stored), so a report or listing of it is not mistaken
    for an empty result."""
    lookup_space(name)
    space = session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one_or_none()
    if space is None:
        raise NotFound("space", f"no architectures of search space {name!r} are stored yet")
    return space


def seed_space(session: Session, name: str) -> SearchSpace:
    """The space's row with all its architectures stored, so that every member of an isomorphism class
    exists to receive the class's score. Run at start-up for the spaces `seeded_at_start` says; a no-op once
    complete."""
    space = ensure_space(session, name)
    seed_architectures(session, space)
    return space


def seed_architectures(session: Session, space: SearchSpace) -> None:
    """Insert every architecture of an enumerable space once; cheap no-op when already complete."""
    searched = lookup_space(space.name)
    archs = searched.enumerate()
    if archs is None or count_architectures(session, space.id) >= len(archs):
        return
    rows = [{"space_id": space.id, "arch": arch, "canonical_key": searched.canonical_key(arch)} for arch in archs]
    insert_ignore(session, Architecture.__table__, rows, unique=["space_id", "arch"])


def count_architectures(session: Session, space_id: int) -> int:
    return session.execute(select(func.count()).where(Architecture.space_id == space_id)).scalar_one()


def get_or_create_architectures(
    session: Session, space: SearchSpace, archs: Sequence[object], field: str = "archs", *, indexed: bool = True
) -> list[Architecture]:
    """Rows for `archs` (any accepted spelling), de-duplicated in request order; unknown ones are added.
    Errors name `field[position]` (or just `field` when not `indexed`). An uploaded network (`onnx`) is
    stored with its file, or must have been (app.services.onnx_models)."""
    searched = lookup_space(space.name)
    if uploaded(searched):
        from app.services.onnx_models import onnx_architectures  # it builds on this module

        return onnx_architectures(session, space, archs, field, indexed=indexed)
    strings = [normalise(searched, arch, f"{field}[{i}]" if indexed else field) for i, arch in enumerate(archs)]
    return architectures_for_strings(session, space, strings)


def architectures_for_strings(session: Session, space: SearchSpace, arch_strings: Sequence[str]) -> list[Architecture]:
    """Rows for normalised strings, de-duplicated in order; only strings not stored yet get a canonical key
    computed and a row inserted."""
    found = architectures_by_string(session, space.id, arch_strings)
    missing = [arch for arch in dict.fromkeys(arch_strings) if arch not in found]
    if missing:
        searched = lookup_space(space.name)
        if uploaded(searched):
            raise NotFound("arch", f"no ONNX file is stored for {missing[0]}; upload it first")
        rows = [{"space_id": space.id, "arch": a, "canonical_key": searched.canonical_key(a)} for a in missing]
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


def enumerate_space(name: str, field: str = "space") -> Sequence[str]:
    """Every architecture of a finite space, or a 422 naming `field` for one too large to list."""
    space = lookup_space(name)
    if uploaded(space):
        raise InvalidInput(field, UPLOADED_NOT_DRAWN)
    archs = space.enumerate()
    if archs is None:
        raise InvalidInput(field, f"search space {name!r} cannot be enumerated; sample or list the architectures")
    return archs


def check_sample_size(name: str, count: int, field: str = "sample.n") -> None:
    """A sample holds distinct architectures, so it can be no larger than a finite space; uploaded networks
    are not drawn at all."""
    if uploaded(lookup_space(name)):
        raise InvalidInput(field, UPLOADED_NOT_DRAWN)
    size = lookup_space(name).size
    if size is not None and not 1 <= count <= size:
        raise InvalidInput(field, f"must be between 1 and {size} (the size of {name}), got {count}")


def sample_architectures(name: str, count: int, seed: int, field: str = "sample.n") -> list[str]:
    """`count` distinct architectures drawn with `seed` by the space's own draw: one draw for the API, the
    CLI and the benchmarks, so the same (count, seed) always names the same batch."""
    check_sample_size(name, count, field)
    return lookup_space(name).sample(count, seed)


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
