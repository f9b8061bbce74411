"""Benchmark evaluation of trained code models: HumanEval pass@k with generated code run in a sandbox."""
