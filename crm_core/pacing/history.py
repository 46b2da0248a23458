"""A campaign's rolling memory of recent dials and agent work, and the model fitted from it.

The service appends as outcomes arrive (and can rebuild it from the database on start); the pacer
reads :meth:`CampaignHistory.model`. The model is refitted once ``refit_every`` records have
arrived since the last fit, so a busy campaign does not refit every second; what it is depends
only on the records added, in order.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable

from crm_core.pacing.model import CampaignModel, Priors
from crm_core.pacing.records import AgentWork, DialOutcome


class CampaignHistory:
    def __init__(
        self,
        *,
        priors: Priors | None = None,
        max_dials: int = 2000,
        max_work: int = 500,
        recent_live: int = 300,
        refit_every: int = 100,
    ) -> None:
        self.priors = priors or Priors()
        self.dials: deque[DialOutcome] = deque(maxlen=max_dials)
        self.work: deque[AgentWork] = deque(maxlen=max_work)
        self.refit_every = max(1, refit_every)
        self._recent: deque[bool] = deque(maxlen=recent_live)
        self._recent_abandoned = 0
        self._added = 0
        self._fitted_at = -1
        self._model: CampaignModel | None = None

    def add_dial(self, outcome: DialOutcome) -> None:
        self.dials.append(outcome)
        self._added += 1
        if outcome.live:
            recent = self._recent
            if len(recent) == recent.maxlen and recent[0]:
                self._recent_abandoned -= 1
            recent.append(outcome.abandoned)
            self._recent_abandoned += outcome.abandoned

    def add_work(self, work: AgentWork) -> None:
        self.work.append(work)
        self._added += 1

    def extend(self, dials: Iterable[DialOutcome] = (), work: Iterable[AgentWork] = ()) -> None:
        for dial in dials:
            self.add_dial(dial)
        for item in work:
            self.add_work(item)

    def model(self) -> CampaignModel:
        """The fitted model (priors alone while the history is empty)."""
        if self._model is None or self._added - self._fitted_at >= self.refit_every:
            self._model = CampaignModel.fit(self.dials, self.work, self.priors)
            self._fitted_at = self._added
        return self._model

    def recent_abandonment(self) -> tuple[int, int]:
        """(abandoned, live answers) among the last ``recent_live`` live answers, as the profile
        counted them."""
        return self._recent_abandoned, len(self._recent)
