"""Executors: where a stage's work units run (local process pool, Ray); they only schedule."""

from preprocessing.executors.base import EXECUTORS, Executor, ExecutorConfig, ExecutorError, make_executor
from preprocessing.executors.local import LocalExecutor

__all__ = ["EXECUTORS", "Executor", "ExecutorConfig", "ExecutorError", "LocalExecutor", "make_executor"]
