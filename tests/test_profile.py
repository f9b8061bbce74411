"""The report's profile: examples chosen per chunk equal those offered one by one."""

from __future__ import annotations

import random

from preprocessing.profile import CorpusProfile


def test_chosen_examples_leave_the_buckets_of_offering_every_one_in_order():
    """CorpusProfile.chosen_examples: offering only the chosen offers, in order, leaves the same
    buckets (examples and their order) as offering every one in order, ties of rank included
    (the earlier one wins), on top of buckets already holding examples."""
    rng = random.Random(3)
    for trial in range(200):
        every, chosen = CorpusProfile(), CorpusProfile()
        for _ in range(rng.randint(0, 3)):  # earlier chunks
            offers = [(f"r{rng.randint(0, 2)}", rng.randint(0, 20)) for _ in range(rng.randint(0, 12))]
            for i in chosen.chosen_examples(offers):
                chosen.offer_example(*offers[i], {"i": i})
            for i, (reason, rank) in enumerate(offers):
                every.offer_example(reason, rank, {"i": i})
            assert chosen.examples == every.examples, trial
    assert any(len(v) == 3 for v in every.examples.values())
