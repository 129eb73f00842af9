"""Our own reviews as known content: each review joins the deployment's `reviews` hash list, so a
near-duplicate uploaded later is known ("reviewed as gore by ... on ...") and can be decided
without revealing it, and the team can export what it has confirmed."""

from __future__ import annotations

from pipeline.stores.hash_lists import HashLists
from pipeline.stores.records import ImageRecord, Review


def remember(lists: HashLists, record: ImageRecord, review: Review) -> bool:
    """True when the review joined the list; an image with no PDQ hash, or one of low quality (a
    flat image would match too much), does not."""
    if record.pdq is None or not record.pdq.matchable:
        return False
    lists.remember_review(record.pdq.hash, review.verdict, review.by, review.at, record.id)
    return True
