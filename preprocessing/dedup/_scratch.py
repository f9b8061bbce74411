"""Scratch space of the native MinHash kernels (the C extension checks the same formula)."""


def scratch_words(max_bytes: int) -> int:
    """uint64 words of scratch the kernels need for files of up to ``max_bytes`` bytes: distinct
    shingles, token hashes and n-gram hashes (one per two bytes at most, plus one) and a hash table
    of the first power of two >= twice that. Pages a small file does not touch are never mapped."""
    n = max_bytes // 2 + 2
    cap = 16
    while cap < 2 * n:
        cap *= 2
    return 3 * n + cap
