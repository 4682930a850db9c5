"""What storing one answer reads about its participant, in one statement, whichever backend reads it."""
from __future__ import annotations

from typing import NamedTuple


class Pointer(NamedTuple):
    participant_id: str
    state: str
    next_index: int  # the trial the participant answers next
    n_trials: int
    task_type: str
    study_id: str
    next_trial_id: int | None  # that trial's row (None: past the end)

    def takes_plainly(self, trial_index: int) -> bool:
        """The usual case, one guarded insert: the next trial, in task, and not the last (whose answer
        completes the participant: the locked path counts the rows and records the transition)."""
        return (self.state == "in_task" and self.next_trial_id is not None and trial_index == self.next_index
                and self.next_index + 1 < self.n_trials)
