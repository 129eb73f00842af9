"""A video's analysis in time: which frames are classified, and the gore segments they make.

Frames are classified at a steady rate (`sample_fps`) and at every scene cut, so a short shot
between two samples is still seen. Gore samples close in time join into one segment (start, end
and peak probability, as AWS Rekognition's SEGMENTS); each segment is padded on both sides, and
every frame inside a padded segment is segmented or masked from its neighbours' masks.
"""

from __future__ import annotations

import cv2
import numpy as np

from pipeline.stores.video_records import GoreSegment, SampledFrame

CUT_SIZE = (64, 36)
"""Frames are compared at this size (grey) to find scene cuts: cheap, and blind to noise."""
CUT_DIFFERENCE = 40.0
"""Mean absolute grey difference (0 to 255) between consecutive frames that counts as a cut."""


class Sampler:
    """Which decoded frames to classify: one every 1/`fps` s of video time, and each scene cut."""

    def __init__(self, fps: float):
        self.period = 1.0 / fps
        self.next_s = 0.0
        self.previous: np.ndarray | None = None

    def wants(self, time_s: float, pixels: np.ndarray) -> tuple[bool, bool]:
        """(classify it, because of a scene cut)."""
        small = cv2.cvtColor(cv2.resize(pixels, CUT_SIZE, interpolation=cv2.INTER_AREA), cv2.COLOR_RGB2GRAY)
        cut = self.previous is not None and float(cv2.absdiff(small, self.previous).mean()) > CUT_DIFFERENCE
        self.previous = small
        steady = time_s + 1e-6 >= self.next_s
        if steady:
            self.next_s = time_s + self.period
        return steady or cut, cut and not steady


def gore(sample: SampledFrame, threshold: float) -> bool:
    """At or over the threshold, or on a gore hash list (fail closed: a listed frame is gore)."""
    return sample.probability >= threshold or (sample.known is not None and sample.known.label == "gore")


def segments(samples: list[SampledFrame], threshold: float, pad_s: float, gap_s: float) -> list[GoreSegment]:
    """Gore samples (`gore`) grouped: two join when no more than `gap_s` apart with no non-gore
    sample between, or when their padded spans touch."""
    found: list[GoreSegment] = []
    run: list[SampledFrame] = []

    def close() -> None:
        if run:
            start, end = run[0].time_s, run[-1].time_s
            peak = max(s.probability for s in run)
            known = sorted({s.known.list_name for s in run if s.known is not None})
            segment = GoreSegment(
                start_s=start,
                end_s=end,
                peak_probability=round(peak, 6),
                padded_start_s=max(0.0, start - pad_s),
                padded_end_s=end + pad_s,
                known=known,
            )
            if found and segment.padded_start_s <= found[-1].padded_end_s:
                last = found.pop()
                segment = GoreSegment(
                    start_s=last.start_s,
                    end_s=end,
                    peak_probability=max(last.peak_probability, segment.peak_probability),
                    padded_start_s=last.padded_start_s,
                    padded_end_s=segment.padded_end_s,
                    known=sorted({*last.known, *segment.known}),
                )
            found.append(segment)
            run.clear()

    for sample in sorted(samples, key=lambda s: s.time_s):
        if gore(sample, threshold):
            if run and sample.time_s - run[-1].time_s > gap_s:
                close()
            run.append(sample)
        else:
            close()
    close()
    return found


def inside(time_s: float, found: list[GoreSegment]) -> bool:
    """Whether a frame at `time_s` is in a padded gore segment."""
    return any(s.padded_start_s - 1e-6 <= time_s <= s.padded_end_s + 1e-6 for s in found)


def inside_known(time_s: float, found: list[GoreSegment]) -> bool:
    """Whether a frame at `time_s` is in a padded segment a gore hash list made or joined."""
    return any(s.known and s.padded_start_s - 1e-6 <= time_s <= s.padded_end_s + 1e-6 for s in found)
