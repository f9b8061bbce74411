"""The stage runner: one lifecycle for every stage, over any executor."""

from preprocessing.runner.run import ExecutorSpec, run_fused, run_stage
from preprocessing.runner.stage import Follower, Stage

__all__ = ["ExecutorSpec", "Follower", "Stage", "run_fused", "run_stage"]
