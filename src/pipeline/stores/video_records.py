"""The video record model: a video's state in the service and its analysis in time.

    VideoRecord     one per video id (SHA-256 of the bytes): who sent it, its state, the result
      result        VideoResult: the timeline (sampled frames, gore segments), what was masked
    VideoSummary    what a list shows of one: kept beside the record, so listing never reads timelines

The timeline is made by pipeline.video; the files it names are kept by stores/videos.py.
"""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from pipeline.stores.hash_lists import KnownMatch
from pipeline.stores.records import Pdq

VideoState = Literal["queued", "working", "done", "failed"]


class SampledFrame(BaseModel):
    index: int
    time_s: float
    probability: float = Field(ge=0.0, le=1.0, description="The classifier's gore probability for this frame.")
    scene_cut: bool = Field(description="Classified because a new shot starts here, not for the steady rate.")
    pdq: Pdq | None = Field(None, description="The frame's PDQ hash (vPDQ's way: PDQ of sampled frames).")
    known: KnownMatch | None = Field(None, description="A gore hash list's match: the frame is gore, whatever p.")


class GoreSegment(BaseModel):
    start_s: float = Field(description="Time of the first sampled frame at or over the threshold.")
    end_s: float = Field(description="Time of the last one.")
    peak_probability: float
    padded_start_s: float = Field(description="Where masking starts: the segment widened by the padding.")
    padded_end_s: float
    known: list[str] = Field(
        default_factory=list,
        description="Gore hash lists a frame of it matched: a frame there with no mask is hidden whole.",
    )


class VideoResult(BaseModel):
    id: str = Field(description="SHA-256 of the file.")
    filename: str
    container: str
    codec: str
    width: int = Field(description="Upright, as shown.")
    height: int
    rotation: int = Field(description="Degrees the stored frames were turned to be shown upright.")
    fps: float
    seconds: float = Field(description="Video time decoded (to the last frame's start, plus one frame).")
    frames: int = Field(description="Frames decoded and written.")
    stopped: str | None = Field(None, description="Where and why decoding ended early: the rest was not read.")
    audio: Literal["copied", "muted", "none", "dropped"]
    audio_note: str | None = None
    demo: bool = Field(description="Analysed by demo models (synthetic data): not a gore detector.")
    classifier: str
    segmenter: str
    threshold: float
    gore: bool = Field(description="Some sampled frame reached the threshold, or matched a gore hash list.")
    known: list[KnownMatch] = Field(
        default_factory=list, description="Hash list matches of sampled frames, the nearest per list."
    )
    gore_seconds: float = Field(description="Seconds of video inside the padded gore segments.")
    segments: list[GoreSegment]
    sampled: list[SampledFrame]
    segmented_frames: int
    masked_frames: int = Field(description="Frames some pixels of which were censored.")
    hidden_frames: list[int] = Field(
        description="Frames hidden whole inside a gore segment: damaged, or not segmented (fail closed)."
    )
    outputs: dict[str, str] = Field(description="File names written: censored video, timeline, masks, strip.")
    timings_ms: dict[str, float]


class VideoRecord(BaseModel):
    id: str = Field(description="SHA-256 of the uploaded bytes.")
    filename: str
    state: VideoState
    submitted_by: str
    submitted_at: datetime
    finished_at: datetime | None = None
    status: int | None = Field(None, description="For a failed video: the HTTP status the failure deserves.")
    error: str | None = None
    progress: float | None = Field(None, description="While working: the share done, 0 to 1.")
    result: VideoResult | None = Field(None, description="The timeline, once censored.")


class VideoSummary(BaseModel):
    """A video in a list: its state and what was found, without the timeline."""

    id: str
    filename: str
    state: VideoState
    submitted_by: str
    submitted_at: datetime
    finished_at: datetime | None = None
    status: int | None = None
    error: str | None = None
    progress: float | None = None
    gore: bool | None = Field(None, description="Once done: whether gore segments were found.")
    segments: int | None = Field(None, description="Once done: how many gore segments.")
    gore_seconds: float | None = None
    seconds: float | None = Field(None, description="Once done: the video time decoded.")
    demo: bool | None = Field(None, description="Once done: analysed by demo models (not a gore detector).")

    @classmethod
    def of(cls, record: VideoRecord) -> VideoSummary:
        result = record.result
        found = {}
        if result is not None:
            found = {
                "gore": result.gore,
                "segments": len(result.segments),
                "gore_seconds": result.gore_seconds,
                "seconds": result.seconds,
                "demo": result.demo,
            }
        return cls(**record.model_dump(exclude={"result"}), **found)
