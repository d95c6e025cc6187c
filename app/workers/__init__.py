"""Scoring executors: the `Executor` interface, the local process pool and the job dispatcher."""

from app.workers.base import Executor, ProxyOutcome, ScoringTask, TaskError, TaskResult, WorkerDied

__all__ = ["Executor", "ProxyOutcome", "ScoringTask", "TaskError", "TaskResult", "WorkerDied"]
