"""Observed accuracies: `client.observations.add(...)`, `.add_many(rows)`, `.import_csv(path, ...)` and
`.delete(source)`; and the CSV reader that `nasscore observations import` uses for local imports too, so a
file is read one way whichever database it goes to."""

import csv
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from app.api.schemas import ErrorItem, ObservationIn, ObservationsDeleted, ObservationsStored
from app.client.errors import NasscoreError
from app.client.transport import Transport

CHUNK_ROWS = 5_000  # rows per POST: below the server's default limit per request (20,000)
_ROW_FIELD = re.compile(r"^body\[(\d+)\]")


@dataclass(frozen=True)
class CsvColumns:
    """Which columns of a CSV hold what, and the fields every row shares."""

    dataset: str
    accuracy: str
    arch: str = "arch"
    index: str | None = None
    space: str = "nb201"
    metric: str | None = None
    epochs: int | None = None
    source: str | None = None


def read_observations_csv(path: Path, columns: CsvColumns) -> list[dict[str, Any]]:
    """One observation (ObservationIn's fields) per data row; `source` defaults to the file's name. A
    NasscoreError names the file, line and column of a bad value."""
    try:
        with path.open(newline="") as stream:
            reader = csv.DictReader(stream)
            header = reader.fieldnames or []
            missing = [c for c in (columns.arch, columns.accuracy, columns.index) if c and c not in header]
            if missing:
                raise NasscoreError(f"{path} has no column {', '.join(missing)}; it has {', '.join(header)}")
            return [_row(path, columns, line, record) for line, record in enumerate(reader, start=2)]
    except OSError as error:
        raise NasscoreError(f"cannot read {path}: {error.strerror}") from None


def _row(path: Path, columns: CsvColumns, line: int, record: dict[str, str]) -> dict[str, Any]:
    def number(column: str, kind: type) -> Any:
        try:
            return kind(record[column])
        except (TypeError, ValueError):
            raise NasscoreError(
                f"column {column}: {record[column]!r} is not a number", field=f"{path.name}:{line}"
            ) from None

    row = {
        "space": columns.space,
        "arch": record[columns.arch],
        "dataset": columns.dataset,
        "accuracy": number(columns.accuracy, float),
        "metric": columns.metric,
        "epochs": columns.epochs,
        "source": columns.source or path.name,
        "benchmark_index": number(columns.index, int) if columns.index else None,
    }
    return {name: value for name, value in row.items() if value is not None}


class Observations:
    """POST and DELETE /v1/observations. Each source keeps its own value per architecture, dataset and
    metric; posting a source's value again replaces it (only for the key that posted it, or an admin)."""

    def __init__(self, transport: Transport) -> None:
        self._transport = transport

    def add(
        self,
        arch: str | Sequence[str],
        accuracy: float,
        dataset: str = "cifar10",
        *,
        space: str = "nb201",
        metric: str | None = None,
        epochs: int | None = None,
        source: str | None = None,
        benchmark_index: int | None = None,
    ) -> ObservationsStored:
        """Record one observed accuracy (percent). `source` defaults to the key's name ('api' without one),
        `metric` to test_accuracy."""
        row = {
            "space": space,
            "arch": arch if isinstance(arch, str) else list(arch),
            "dataset": dataset,
            "accuracy": accuracy,
            "metric": metric,
            "epochs": epochs,
            "source": source,
            "benchmark_index": benchmark_index,
        }
        return self.add_many([{name: value for name, value in row.items() if value is not None}])

    def add_many(
        self, rows: Iterable[ObservationIn | Mapping[str, Any]], chunk_rows: int = CHUNK_ROWS
    ) -> ObservationsStored:
        """Record many observations, `chunk_rows` per request (each request is one transaction). An error
        names the row by its position in `rows` (`body[12345].accuracy`); earlier chunks stay stored."""
        return self._post(list(rows), [], chunk_rows)

    def import_csv(
        self,
        path: str | Path,
        dataset: str,
        accuracy_column: str,
        *,
        arch_column: str = "arch",
        index_column: str | None = None,
        space: str = "nb201",
        metric: str | None = None,
        epochs: int | None = None,
        source: str | None = None,
        chunk_rows: int = CHUNK_ROWS,
    ) -> ObservationsStored:
        """Import a CSV of accuracies (e.g. NAS-Bench-201's `index,arch,cifar10_test_acc`): one observation
        per row under `source` (default: the file's name). An error names the file and line
        (`table.csv:7.accuracy`)."""
        path = Path(path)
        columns = CsvColumns(dataset, accuracy_column, arch_column, index_column, space, metric, epochs, source)
        rows = read_observations_csv(path, columns)
        return self._post(rows, [f"{path.name}:{line}" for line in range(2, len(rows) + 2)], chunk_rows)

    def delete(self, source: str, dataset: str | None = None, metric: str | None = None) -> ObservationsDeleted:
        """Delete one source's observations (of one dataset and/or metric); needs an admin key."""
        params = {"source": source, "dataset": dataset, "metric": metric}
        response = self._transport.request("DELETE", "/v1/observations", params=params)
        return ObservationsDeleted.model_validate_json(response.content)

    def _post(
        self, rows: Sequence[ObservationIn | Mapping[str, Any]], names: list[str], chunk_rows: int
    ) -> ObservationsStored:
        """POST `rows` in chunks; a row named in an error is renamed from its place in the chunk to its
        place in `rows` (or to `names[place]` when given)."""
        received = stored = 0
        for start in range(0, len(rows), chunk_rows):
            chunk = [
                row.model_dump(exclude_none=True) if isinstance(row, ObservationIn) else dict(row)
                for row in rows[start : start + chunk_rows]
            ]
            try:
                response = self._transport.request("POST", "/v1/observations", json=chunk)
            except NasscoreError as error:
                raise _renamed(error, start, names) from None
            answer = ObservationsStored.model_validate_json(response.content)
            received, stored = received + answer.received, stored + answer.stored
        return ObservationsStored(received=received, stored=stored)


def _renamed(error: NasscoreError, start: int, names: list[str]) -> NasscoreError:
    def rename(field: str) -> str:
        def place(match: re.Match[str]) -> str:
            position = start + int(match.group(1))
            return names[position] if position < len(names) else f"body[{position}]"

        return _ROW_FIELD.sub(place, field)

    errors = [ErrorItem(field=rename(e.field), message=e.message) for e in error.errors]
    if not errors:
        return error
    detail = "; ".join(f"{e.field}: {e.message}" if e.field else e.message for e in errors)
    return NasscoreError(
        errors[0].message,
        status=error.status,
        field=errors[0].field or None,
        errors=errors,
        detail=detail,
        retry_after=error.retry_after,
    )
