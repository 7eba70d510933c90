"""What a training run carries from one invocation to the next: the record saved in every
checkpoint beside the optimizer and RNG state, validated when a run resumes.

Totals are the whole run's, across resumes (``tokens_total``, ``flops_total``); one
invocation's spend is the caller's. In ``state.pt`` the record is stored under the key
``history`` with its original short keys (``val``, ``tokens``, ``flops``, ``forecast``,
``best``, ``since_best``), so run folders made before this type existed still resume, and
checkpoints made now resume with older lvtime. No torch.
"""

from __future__ import annotations

import math

from pydantic import BaseModel, ConfigDict, Field

STATE_KEY = "history"  # the record's key in state.pt (kept: old checkpoints)


class BestForecast(BaseModel):
    """The step whose adapter ``best/`` holds, its score and the run's FLOPs then."""

    model_config = ConfigDict(extra="forbid")
    step: int = Field(ge=0)
    score: float
    flops: float = Field(ge=0)


class RunState(BaseModel):
    model_config = ConfigDict(populate_by_name=True, extra="forbid", validate_assignment=True)

    val_losses: dict[str, float] = Field(default_factory=dict, alias="val")  # step -> validation loss
    tokens_total: int = Field(0, ge=0, alias="tokens")  # training tokens seen
    flops_total: float = Field(0.0, ge=0, alias="flops")  # FLOPs spent by the run
    forecast_scores: dict[str, float] = Field(default_factory=dict, alias="forecast")  # step -> ranking score
    best: BestForecast | None = None
    evals_since_best: int = Field(0, ge=0, alias="since_best")  # forecast evaluations without a better score

    def to_checkpoint(self) -> dict:
        return self.model_dump(by_alias=True)

    def note_forecast(self, step: int, score: float) -> bool:
        """Record an evaluation's score; True when it is the best so far (a NaN score is
        never better than a number)."""
        self.forecast_scores = {**self.forecast_scores, str(step): score}
        unscored = self.best is None or math.isnan(self.best.score)
        if (unscored and not math.isnan(score)) or self.best is None or score < self.best.score:
            self.best, self.evals_since_best = BestForecast(step=step, score=score, flops=self.flops_total), 0
            return True
        self.evals_since_best += 1
        return False
