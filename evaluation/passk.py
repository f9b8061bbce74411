"""The unbiased pass@k estimator of Chen et al. (2021), "Evaluating Large Language Models Trained on Code"."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np


def pass_at_k(n: int, c: int, k: int) -> float:
    """Probability that at least one of k samples drawn without replacement from n, c of them correct, passes.

    1 - C(n-c, k) / C(n, k), computed as the numerically stable product 1 - prod_{i=n-c+1}^{n} (1 - k/i).
    """
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n; got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    return float(1.0 - np.prod(1.0 - k / np.arange(n - c + 1, n + 1)))


def mean_pass_at_k(samples: Sequence[int], correct: Sequence[int], ks: Sequence[int]) -> dict[str, float]:
    """pass@k averaged over problems, for each k that every problem has enough samples for."""
    if len(samples) != len(correct) or not samples:
        raise ValueError("need one (samples, correct) pair per problem, at least one problem")
    smallest = min(samples)
    return {f"pass@{k}": float(np.mean([pass_at_k(n, c, k) for n, c in zip(samples, correct)]))
            for k in ks if k <= smallest}
