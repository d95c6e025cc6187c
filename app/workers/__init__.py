"""Execution only: the `Executor` interface and what a task carries (base), the local process pool (local,
with the code its processes run: process, scoring) and the Ray executor. Which items to run, and recording
what comes back, is the dispatcher's business (app/queue)."""

from app.workers.base import CalibrationInput, Executor, ScoringTask, TaskError, TaskResult, WorkerDied

__all__ = ["CalibrationInput", "Executor", "ScoringTask", "TaskError", "TaskResult", "WorkerDied"]
