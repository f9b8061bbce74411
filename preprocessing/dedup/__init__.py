"""MinHash LSH near-deduplication: shingling, signatures, band tables, union-find, the two-pass stage."""
