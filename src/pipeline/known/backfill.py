"""PDQ hashes for the records stored before PDQ (`gore-censor hashes backfill`): until a record
has one, no hash list can match it, so an old image on a gore list would be shown as before."""

from __future__ import annotations

from collections.abc import Callable

from pipeline.errors import PipelineError
from pipeline.known.pdq import image_pdq
from pipeline.stores.images import ImageStore
from pipeline.stores.records import ImageRecord


def backfill(store: ImageStore, decode: Callable[[bytes, str], object]) -> tuple[int, list[str]]:
    """Each record without a PDQ hash gains one, from its original decoded as uploads are (`decode`:
    bytes, file name -> a DecodedImage). Returns how many gained one, and the ids whose original
    could not be read or decoded (left as they were, said)."""
    done, failed = 0, []
    for image_id in store.ids():
        record: ImageRecord | None = store.record(image_id)
        if record is None or record.pdq is not None:
            continue
        try:
            data, _ = store.original(image_id)
            frames = decode(data, record.filename).frames
        except PipelineError:
            failed.append(image_id)
            continue
        store.merge(record.model_copy(update={"pdq": image_pdq(frames)}))  # The merge keeps a PDQ set meanwhile.
        done += 1
    return done, failed
