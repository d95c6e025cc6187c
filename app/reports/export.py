"""Exports of a population's scores: CSV, and the zero-cost benchmark JSON that NASLib reads.

A row is a plain dict: {"arch": the architecture's text, "canonical_key": its isomorphism class,
"config_fingerprint": the scores' configuration, "scores": {proxy: (value, seconds)}, "accuracy":
observed accuracy or None}. Exports list cells; the canonical key lets a consumer count isomorphism
classes instead, and the fingerprint says which scores may be compared. Non-finite numbers become JSON
null (strict JSON has no NaN), so the export always serialises.
"""

import csv
import io
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from search_spaces.nb201.naslib import arch_to_naslib_key, naslib_task_name

ACCURACY_KEY = "val_accuracy"
LABEL_KEYS = ("canonical_key", "config_fingerprint")


def export_naslib(
    rows: Iterable[Mapping[str, Any]], dataset: str, encode: Callable[[str], str | None] = arch_to_naslib_key
) -> dict[str, dict[str, dict[str, Any]]]:
    """NAS-Bench-Suite-Zero layout: {task: {"(i, j, k, l, m, n)": {proxy: {score, time}, val_accuracy,
    canonical_key, config_fingerprint}}}.

    NASLib looks architectures up by its encoding of them (`encode`, the space's `naslib_encoding`;
    NAS-Bench-201's str(op-index tuple) by default), and reads proxies by name, so the two label strings next
    to them stay out of its way. `val_accuracy` carries whatever accuracy we observed (NASLib's own NB201
    CIFAR-10 file holds the cifar10-valid validation accuracy) and is null where none was observed.
    """
    entries: dict[str, dict[str, Any]] = {}
    for row in rows:
        key = encode(row["arch"])
        if key is None:
            raise ValueError(f"NASLib has no encoding of architecture {row['arch']}")
        if key in entries:
            raise ValueError(f"architecture {row['arch']} appears twice in the export")
        entries[key] = _naslib_entry(row)
    return {naslib_task_name(dataset): entries}


def export_csv(rows: Iterable[Mapping[str, Any]], proxies: Sequence[str]) -> str:
    """CSV with columns arch, canonical_key, config_fingerprint, then <proxy> and <proxy>_seconds for each
    proxy, then accuracy.

    Numbers are written in Python's shortest round-trip form ("nan" and "inf" included); a score the
    row lacks and an unobserved accuracy are empty cells.
    """
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    score_columns = (column for proxy in proxies for column in (proxy, f"{proxy}_seconds"))
    writer.writerow(["arch", *LABEL_KEYS, *score_columns, "accuracy"])
    for row in rows:
        scores = row.get("scores", {})
        cells = [row["arch"], *(row[key] for key in LABEL_KEYS)]
        for proxy in proxies:
            value, seconds = scores.get(proxy, (None, None))
            cells += [_csv_number(value), _csv_number(seconds)]
        writer.writerow([*cells, _csv_number(row.get("accuracy"))])
    return buffer.getvalue()


def _naslib_entry(row: Mapping[str, Any]) -> dict[str, Any]:
    scores = row.get("scores", {})
    for reserved in (ACCURACY_KEY, *LABEL_KEYS):
        if reserved in scores:
            raise ValueError(f"a proxy may not be called {reserved!r}: the entry keeps its own {reserved} there")
    entry: dict[str, Any] = {
        proxy: {"score": _json_number(value), "time": _json_number(seconds)}
        for proxy, (value, seconds) in scores.items()
    }
    entry[ACCURACY_KEY] = _json_number(row.get("accuracy"))
    entry.update({key: row[key] for key in LABEL_KEYS})
    return entry


def _json_number(value: float | None) -> float | None:
    if value is None:
        return None
    number = float(value)
    return number if math.isfinite(number) else None


def _csv_number(value: float | None) -> str:
    return "" if value is None else repr(float(value))
