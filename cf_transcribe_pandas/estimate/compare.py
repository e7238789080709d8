"""Several models' estimates of one frame side by side (``compare_models=True``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from cf_transcribe_pandas.estimate.result import Estimate
from cf_transcribe_pandas.estimate.units import format_dollars, format_minutes, format_seconds

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["ModelComparison"]


@dataclass(frozen=True)
class ModelComparison:
    """One :class:`Estimate` per model for the same rows; made by ``estimate(...,
    compare_models=True)``.

    Attributes:
        estimates: The estimates by model name, the run's own model first.
    """

    estimates: dict[str, Estimate]

    def __getitem__(self, model: str) -> Estimate:
        return self.estimates[model]

    def rows(self) -> list[dict[str, Any]]:
        """One dict a model: what it would send, cost and take."""
        out = []
        for model, est in self.estimates.items():
            price = est.price_per_minute
            out.append(
                {
                    "model": model,
                    "rows_to_send": est.rows_to_send,
                    "audio_minutes_to_send": est.audio_minutes_to_send,
                    "requests": est.requests,
                    "price_per_minute": price,
                    "dollars_per_audio_hour": None if price is None else 60 * price,
                    "cost": est.cost,
                    "wall_seconds": est.wall_seconds,
                }
            )
        return out

    def to_frame(self) -> pd.DataFrame:
        """The comparison as a DataFrame, one row a model (indexed by model)."""
        import pandas as pd

        frame: pd.DataFrame = pd.DataFrame(self.rows()).set_index("model")
        return frame

    def as_dict(self) -> dict[str, Any]:
        """Each model's :meth:`Estimate.as_dict`, by model."""
        return {model: est.as_dict() for model, est in self.estimates.items()}

    def __str__(self) -> str:
        lines = ["Estimate by model (nothing was sent):"]
        width = max(len(m) for m in self.estimates)
        for row in self.rows():
            cost = "unknown" if row["cost"] is None else format_dollars(row["cost"])
            hour = row["dollars_per_audio_hour"]
            per_hour = "price unknown" if hour is None else f"${hour:.4g} per audio hour"
            lines.append(
                f"  {row['model']:<{width}}  {cost:>10}  ({per_hour}); "
                f"{format_minutes(row['audio_minutes_to_send'])} to send in "
                f"{row['requests']:,} requests, {format_seconds(row['wall_seconds'])}"
            )
        return "\n".join(lines)
