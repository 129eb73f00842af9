"""Serving the active-learning loop to people (README: Active learning).

    GORE_ANNOTATION_ROOT/
      pool/          unlabelled images, dropped here by whoever collects them (any folder name)
      dataset/       labels land here in the training tools' formats (dataset.json, gore/, not_gore/, masks/)

`next_images` runs a pool through the censoring pipeline (so each image is classified once, kept
by content hash, and has its censored copy ready for the labelling page), ranks what is not yet
in the data set with a query strategy, and returns the k images to label next. `take_labels`
takes a CSV or VIA project into the data set; `label_one` is the labelling page's single label,
recorded with whether the annotator had to reveal the image to decide.

Several Censor workers and people may label at once: a data set is written under an exclusive
`flock`, so no label is lost to another's write.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
from anyio import to_thread
from pydantic import BaseModel, ConfigDict, Field

from pipeline.active_learning.strategies import STRATEGY_NEEDS, PoolPredictions, Strategy, rank
from pipeline.data.dataset import Dataset
from pipeline.data.formats.folders import image_files
from pipeline.data.formats.via import MOST_IMAGE_BYTES
from pipeline.data.labels import LabelFormat, labelled_names
from pipeline.errors import Conflict, InvalidRequest, NotFound, PipelineError
from pipeline.serving.censorer import Censorer, Upload
from pipeline.serving.schemas import CensorResult
from pipeline.stores.jobs import inside
from pipeline.stores.labels import AnnotatorStats, LabelDecision, LabelDecisions

OFF = "annotation is off here: set GORE_ANNOTATION_ROOT to the folder holding the pools and data sets"
CACHED_ANSWERS = 50_000  # Pool files' answers kept in memory (a few KB each).


class NextRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    pool: str = Field("pool", min_length=1, description="Folder of unlabelled images, under GORE_ANNOTATION_ROOT.")
    dataset: str = Field(
        "dataset", min_length=1, description="Data set folder labels go into; images it holds are not queued."
    )
    strategy: Strategy = Field(
        "gore_averse", description="How to rank; default: informative images that are probably clean first."
    )
    k: int = Field(20, ge=1, le=500, description="How many images to return.")
    seed: int = Field(0, description="Breaks exact ties (and orders `random`).")


class NextItem(BaseModel):
    rank: int
    id: str = Field(description="SHA-256 of the image's bytes: GET /images/{id}/censored shows it censored.")
    file: str = Field(description="Its file name in the pool: the name a label refers to.")
    score: float = Field(description="The strategy's utility: higher, label sooner.")
    gore_probability: float
    gore: bool = Field(description="The models call it gore: show it censored, blurred, and warn.")
    censored: str | None = Field(description="URL path of its censored copy (when gore).")


class NextAnswer(BaseModel):
    strategy: Strategy
    model: str = Field(description="Model store tag of the classifier that ranked the pool.")
    demo: bool
    notice: str | None
    pool: int = Field(description="Unlabelled images ranked.")
    labelled: int = Field(description="Pool images left out: the data set holds them already.")
    skipped: list[str] = Field(description="Files that could not be read, with why.")
    items: list[NextItem]


class LabelProblem(BaseModel):
    item: str
    reason: str


class LabelsAnswer(BaseModel):
    dataset: str
    format: LabelFormat
    taken: int = Field(description="Samples this request added to the data set or changed the label of.")
    samples: int = Field(description="Samples the data set holds now.")
    gore: int
    not_gore: int
    unsplit: int = Field(description="Samples without a split yet: run `gore-censor data split` before training.")
    problems: list[LabelProblem]


class AnnotationDesk:
    def __init__(
        self,
        root: Path | None,
        data_dir: Path,
        most_pool_images: int,
        chunk: int,
        most_image_bytes: int = MOST_IMAGE_BYTES,
    ) -> None:
        self.root = None if root is None else Path(root)
        self.labels = LabelDecisions.in_data_dir(data_dir)
        self.most_pool_images, self.chunk, self.most_image_bytes = most_pool_images, chunk, most_image_bytes
        # Each pool file's answer, by (path, size, modification time, models, options): a pool is
        # read and hashed once, not on every ranking (the labelling page ranks on every visit).
        self._answers: dict[tuple, CensorResult | PipelineError] = {}

    # ---- folders ----

    def folder(self, relative: str, *, must_exist: bool) -> Path:
        if self.root is None:
            raise Conflict(OFF)
        folder = inside(self.root, relative, "the annotation root (GORE_ANNOTATION_ROOT)")
        if must_exist and not folder.is_dir():
            raise NotFound(f"no folder {relative!r} under the annotation root")
        if folder.exists() and not folder.is_dir():
            raise InvalidRequest(f"{relative!r} is a file, not a folder")
        return folder

    def unlabelled(self, pool: str, dataset: str) -> tuple[list[Path], int]:
        """The pool's images the data set does not hold yet, and how many it does."""
        files = image_files(self.folder(pool, must_exist=True))
        known = labelled_names([self.folder(dataset, must_exist=False)])
        left = [path for path in files if path.name not in known]
        if len(left) > self.most_pool_images:
            raise InvalidRequest(
                f"pool {pool!r} holds {len(left):,} unlabelled images, over GORE_ANNOTATION_MAX_POOL "
                f"({self.most_pool_images:,}): split it into smaller pools"
            )
        return left, len(files) - len(left)

    # ---- ranking ----

    async def next_images(self, asked: NextRequest, censorer: Censorer) -> NextAnswer:
        paths, labelled = await to_thread.run_sync(self.unlabelled, asked.pool, asked.dataset)
        need = STRATEGY_NEEDS[asked.strategy]
        options = censorer.options(uncertainty=need in ("mc_draws", "members"))
        keys = await to_thread.run_sync(_file_keys, paths, f"{censorer.key}|{options.uncertainty}")
        fresh = [(path, key) for path, key in zip(paths, keys, strict=True) if key not in self._answers]
        skipped: list[str] = []
        for start in range(0, len(fresh), self.chunk):
            chunk = fresh[start : start + self.chunk]
            # Each pool file is read only as a regular file inside the pool: a pipe or a link is skipped, saying why.
            uploads = [Upload(Path(path.name), path.name, root=path.parent) for path, _ in chunk]
            outcomes = await censorer.censor(uploads, options)
            for (_, key), outcome in zip(chunk, outcomes, strict=True):
                if isinstance(outcome, Conflict) or (isinstance(outcome, PipelineError) and outcome.retry_after_s):
                    raise outcome  # The deployment cannot rank now: say so, not "every file skipped".
                self._answers[key] = outcome
        if len(self._answers) > CACHED_ANSWERS:  # Files gone or changed, models replaced: start afresh.
            self._answers = {key: self._answers[key] for key in keys if key in self._answers}
        results: list[tuple[Path, CensorResult]] = []
        for path, key in zip(paths, keys, strict=True):
            answer = self._answers.get(key)
            if isinstance(answer, CensorResult):
                results.append((path, answer))
            elif answer is not None:
                skipped.append(f"{path.name}: {answer}")
        predictions = _predictions([result for _, result in results], asked.strategy)
        ranking = rank(asked.strategy, predictions, asked.k, seed=asked.seed)
        items = []
        for position, (index, score) in enumerate(zip(ranking.indices, ranking.scores, strict=True), start=1):
            path, result = results[index]
            items.append(
                NextItem(
                    rank=position,
                    id=result.id,
                    file=path.name,
                    score=round(score, 6),
                    gore_probability=result.gore_probability,
                    gore=result.gore,
                    censored=result.censored,
                )
            )
        classifier = censorer.classifier
        return NextAnswer(
            strategy=asked.strategy,
            model=classifier.tag,
            demo=classifier.demo,
            notice=results[0][1].notice if results else None,
            pool=len(results),
            labelled=labelled,
            skipped=skipped,
            items=items,
        )

    # ---- labels ----

    def take_labels(self, data: bytes, fmt: LabelFormat, pool: str, dataset: str) -> LabelsAnswer:
        """A CSV (`image,label`) or VIA project naming images in `pool`, into `dataset`."""
        images, out = self.folder(pool, must_exist=True), self.folder(dataset, must_exist=False)
        with tempfile.TemporaryDirectory(prefix="gore-labels-") as scratch:
            source = Path(scratch) / ("labels.csv" if fmt == "csv" else "labels.json")
            source.write_bytes(data)
            try:
                added = Dataset.add_labels(source, images, out, fmt, self.most_image_bytes)
            except (ValueError, KeyError, UnicodeDecodeError) as error:
                raise InvalidRequest(f"these {fmt} labels cannot be read: {error}") from None
        made, problems, taken = added.dataset, added.problems, added.changed
        gore = sum(1 for s in made.samples if s.gore)
        return LabelsAnswer(
            dataset=dataset,
            format=fmt,
            taken=taken,
            samples=len(made.samples),
            gore=gore,
            not_gore=len(made.samples) - gore,
            unsplit=sum(1 for s in made.samples if s.split is None),
            problems=[LabelProblem(item=p.file, reason=p.reason) for p in problems],
        )

    def label_one(
        self, annotator: str, image_id: str, file: str, pool: str, dataset: str, gore: bool, revealed: bool
    ) -> LabelDecision:
        """One label from the labelling page: into the data set, and recorded with the reveal."""
        images = self.folder(pool, must_exist=True)
        if Path(file).name != file or not (images / file).is_file() or (images / file).is_symlink():
            raise NotFound(f"no image {file!r} in pool {pool!r}")
        row = f"image,label\n{_csv_field(file)},{'gore' if gore else 'not_gore'}\n".encode()
        answer = self.take_labels(row, "csv", pool, dataset)
        if answer.problems:
            raise InvalidRequest("; ".join(f"{p.item}: {p.reason}" for p in answer.problems))
        return self.labels.record(annotator, image_id, file, dataset, gore, revealed)

    def decisions(self, annotator: str | None = None, limit: int = 200) -> list[LabelDecision]:
        return self.labels.decisions(annotator, limit)

    def reveal_rates(self, annotator: str | None = None) -> list[AnnotatorStats]:
        return self.labels.reveal_rates(annotator)


def _predictions(results: list[CensorResult], strategy: Strategy) -> PoolPredictions:
    """What the strategies take, from the pipeline's answers (and their inference-dropout figures)."""
    probabilities = np.array([r.gore_probability for r in results], np.float64)
    need = STRATEGY_NEEDS[strategy]
    if need == "mc_draws":
        std = np.array([r.uncertainty.std for r in results], np.float64)
        return PoolPredictions(count=len(results), probabilities=probabilities, mc_std=np.clip(std, 0, 1))
    if need == "members":
        members = np.array([[m.probability for m in r.uncertainty.members] for r in results], np.float64)
        members = members.T if len(results) else np.zeros((2, 0))
        return PoolPredictions(count=len(results), probabilities=probabilities, members=members)
    return PoolPredictions(count=len(results), probabilities=probabilities)


def _file_keys(paths: list[Path], models: str) -> list[tuple]:
    keys = []
    for path in paths:
        try:
            stat = path.lstat()  # A link is not followed, not even to look at it.
            keys.append((str(path), stat.st_size, stat.st_mtime_ns, models))
        except OSError:  # Gone since listed: asked again, it fails as an unreadable file.
            keys.append((str(path), -1, -1, models))
    return keys


def _csv_field(value: str) -> str:
    return '"' + value.replace('"', '""') + '"' if any(c in value for c in ',"\n\r') else value
