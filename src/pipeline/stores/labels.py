"""The labels people give on the labelling page, with whether they had to reveal the image to
give them: `annotation.db` in the data directory. Each annotator's reveal rate comes from here.
(The labels themselves go into the data set folder: pipeline.data.)
"""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from pipeline.stores.database import TableStore
from pipeline.stores.records import utc_now

DATABASE = "annotation.db"


class LabelDecision(BaseModel):
    """One label given on the labelling page (stored in annotation.db)."""

    id: int
    at: datetime
    annotator: str
    image_id: str
    file: str
    dataset: str
    gore: bool
    revealed: bool = Field(description="The annotator opened the original (blurred or sharp, or a patch) to decide.")


class AnnotatorStats(BaseModel):
    annotator: str
    labels: int
    revealed: int
    reveal_rate: float = Field(description="Share of labels the annotator had to reveal the image to give.")


SCHEMA = """
CREATE TABLE IF NOT EXISTS decisions (
    id INTEGER PRIMARY KEY, at TEXT NOT NULL, annotator TEXT NOT NULL, image_id TEXT NOT NULL,
    file TEXT NOT NULL, dataset TEXT NOT NULL, gore INTEGER NOT NULL, revealed INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS decisions_annotator ON decisions (annotator);
"""


class LabelDecisions(TableStore):
    FILE, SCHEMA = DATABASE, SCHEMA

    def record(
        self, annotator: str, image_id: str, file: str, dataset: str, gore: bool, revealed: bool
    ) -> LabelDecision:
        at = utc_now()
        with self.database.connect() as db:
            decision_id = db.execute(
                "INSERT INTO decisions (at, annotator, image_id, file, dataset, gore, revealed) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
                (at.isoformat(), annotator, image_id, file, dataset, int(gore), int(revealed)),
            ).fetchone()[0]
        return LabelDecision(
            id=decision_id,
            at=at,
            annotator=annotator,
            image_id=image_id,
            file=file,
            dataset=dataset,
            gore=gore,
            revealed=revealed,
        )

    def decisions(self, annotator: str | None = None, limit: int = 200) -> list[LabelDecision]:
        where, args = ("WHERE annotator = ?", (annotator,)) if annotator else ("", ())
        with self.database.connect() as db:
            rows = db.execute(f"SELECT * FROM decisions {where} ORDER BY id DESC LIMIT ?", (*args, limit)).fetchall()
        return [
            LabelDecision(**{**dict(row), "gore": bool(row["gore"]), "revealed": bool(row["revealed"])}) for row in rows
        ]

    def reveal_rates(self, annotator: str | None = None) -> list[AnnotatorStats]:
        where, args = ("WHERE annotator = ?", (annotator,)) if annotator else ("", ())
        with self.database.connect() as db:
            rows = db.execute(
                "SELECT annotator, COUNT(*) AS labels, CAST(SUM(revealed) AS INTEGER) AS revealed FROM decisions "
                f"{where} GROUP BY annotator ORDER BY annotator",
                args,
            ).fetchall()
        return [
            AnnotatorStats(
                annotator=row["annotator"],
                labels=row["labels"],
                revealed=row["revealed"] or 0,
                reveal_rate=round((row["revealed"] or 0) / row["labels"], 4),
            )
            for row in rows
        ]
