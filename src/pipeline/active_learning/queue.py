"""The next images to label: a folder of unlabelled images ranked by a stored classifier.

Images are named by the SHA-256 of their bytes, as the service names uploads. Images already in
a labelled data set (same file name) are left out. Pool files are read as the service reads them:
regular files inside the folder only, under the same size and pixel limits (a pipe, a link or a
decompression bomb is skipped, saying why).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import tf_keras
from pydantic import BaseModel

from pipeline.active_learning.predict import Committee
from pipeline.active_learning.strategies import STRATEGY_NEEDS, PoolPredictions, Strategy, rank
from pipeline.config import get_settings
from pipeline.data.formats.folders import image_files
from pipeline.data.labels import labelled_names
from pipeline.errors import PipelineError
from pipeline.files import read_inside
from pipeline.imaging.decode import decode_upload
from pipeline.imaging.model_input import model_input
from pipeline.metrics import DROPOUT_PASSES

CHUNK = 64  # Images decoded and scored at a time.


class QueueItem(BaseModel):
    rank: int
    id: str
    path: str
    score: float
    gore_probability: float


class Queue(BaseModel):
    strategy: Strategy
    model: str
    demo: bool
    pool: int
    skipped: list[str]
    items: list[QueueItem]


def next_to_label(
    folder: Path,
    classifier: tf_keras.Model,
    strategy: Strategy,
    k: int,
    *,
    model: str,
    demo: bool,
    mc_passes: int = DROPOUT_PASSES,
    exclude: list[Path] | None = None,
    seed: int = 0,
) -> Queue:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder}: no such folder")
    known = labelled_names(exclude or [])
    paths = [p for p in image_files(folder) if p.name not in known]
    size = classifier.input_shape[1]
    committee = Committee.of(classifier)
    need = STRATEGY_NEEDS[strategy]
    limits = get_settings()
    kept, ids, skipped, parts = [], [], [], []
    for start in range(0, len(paths), CHUNK):
        batch, chunk_paths = [], []
        for path in paths[start : start + CHUNK]:
            try:
                data = read_inside(folder, path.name, limits.max_upload_bytes)
                decoded = decode_upload(
                    data,
                    path.name,
                    max_bytes=limits.max_upload_bytes,
                    max_pixels=limits.max_pixels,
                    max_frames=limits.max_frames,
                    at_least=size,
                )
            except PipelineError as error:
                skipped.append(f"{path.name}: {error}")
                continue
            batch.append(model_input(decoded.frames[0], size))
            chunk_paths.append(path)
            ids.append(hashlib.sha256(data).hexdigest())
        if batch:
            kept += chunk_paths
            parts.append(
                committee.predict(
                    np.stack(batch).astype(np.float32),
                    mc_passes=mc_passes if need == "mc_draws" else 0,
                    members=need == "members",
                )
            )
    predictions = _joined(parts)
    ranking = rank(strategy, predictions, k, seed=seed)
    probabilities = predictions.probabilities if predictions.probabilities is not None else np.zeros(len(kept))
    items = [
        QueueItem(rank=i + 1, id=ids[j], path=str(kept[j]), score=score, gore_probability=float(probabilities[j]))
        for i, (j, score) in enumerate(zip(ranking.indices, ranking.scores, strict=True))
    ]
    return Queue(strategy=strategy, model=model, demo=demo, pool=len(kept), skipped=skipped, items=items)


def _joined(parts: list[PoolPredictions]) -> PoolPredictions:
    if not parts:
        return PoolPredictions(count=0, probabilities=np.zeros(0))

    def join(name: str, axis: int):
        arrays = [getattr(p, name) for p in parts]
        return None if arrays[0] is None else np.concatenate(arrays, axis=axis)

    return PoolPredictions(
        count=sum(p.count for p in parts),
        probabilities=join("probabilities", 0),
        mc_draws=join("mc_draws", 1),
        members=join("members", 1),
    )
