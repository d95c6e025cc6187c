"""Typed results: the API's own response models (app.api.schemas), with `to_pandas()` on the tables. The
subclasses add methods only, never fields, so a result is an instance of the API's model and validates
exactly as the server's answer did."""

import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.api.schemas import CorrelationsOut, LeaderboardOut

if TYPE_CHECKING:
    import pandas

PANDAS_MISSING = "to_pandas() needs pandas: pip install 'nasscore[client]' (or pandas>=2)"


def _pandas() -> Any:
    try:
        import pandas
    except ImportError:
        raise ImportError(PANDAS_MISSING) from None
    return pandas


class Leaderboard(LeaderboardOut):
    def to_pandas(self) -> "pandas.DataFrame":
        """One row per leaderboard row, best first: its ranks, vote, percentile, accuracy, members and one
        column per proxy of the population (NaN where a score is missing or not finite)."""
        columns = ["vote_rank", "rank", "vote", "percentile", "accuracy", "members", "id", "arch", "canonical_key"]
        rows = [
            {**{name: getattr(item, name) for name in columns}, **{p: item.scores.get(p) for p in self.proxies}}
            for item in self.items
        ]
        return _pandas().DataFrame(rows, columns=[*columns, *self.proxies])

    @property
    def proxies(self) -> list[str]:
        return self.population.proxies


CORRELATION_FIGURES = (
    "n",
    "spearman_rho",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "kendall_tau",
    "kendall_p",
    "pearson_rank_r",
    "pearson_rank_p",
    "top_recall",
    "best_accuracy_top10",
    "best_accuracy_top100",
    "best_accuracy",
)


class Correlations(CorrelationsOut):
    def to_pandas(self) -> "pandas.DataFrame":
        """One row per voting proxy and the vote, indexed by name: the per-class figures, then the same
        figures per cell prefixed `cell_`, and the reasons figures are missing."""
        rows = [
            {
                "name": entry.name,
                "kind": entry.kind,
                **{figure: getattr(entry, figure) for figure in CORRELATION_FIGURES},
                "reason": entry.reason,
                **{f"cell_{figure}": getattr(entry.per_cell, figure) for figure in CORRELATION_FIGURES},
                "cell_reason": entry.per_cell.reason,
            }
            for entry in self.correlations
        ]
        return _pandas().DataFrame(rows).set_index("name")


@dataclass(frozen=True)
class Export:
    """GET /v1/export's download: `content` as sent, with its type and the file name the server suggests."""

    content: bytes
    media_type: str
    filename: str

    def save(self, path: str | Path) -> Path:
        """Write the download to `path` (a directory: under the server's file name there); returns the file."""
        target = Path(path)
        if target.is_dir():
            target = target / self.filename
        target.write_bytes(self.content)
        return target

    def json(self) -> Any:
        """The `naslib` format's JSON."""
        return json.loads(self.content)

    def to_pandas(self) -> "pandas.DataFrame":
        """The `csv` format as a DataFrame, one row per cell."""
        if not self.media_type.startswith("text/csv"):
            raise ValueError(f"to_pandas() reads the csv export, not {self.media_type} (ask for format='csv')")
        return _pandas().read_csv(io.BytesIO(self.content))
