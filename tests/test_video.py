"""Video: only the gore pixels of a video are masked, frame by frame, without flicker, with its sound.

Real encoded videos (tests/videos.py, made with PyAV) and the red-pixel test models, whose output
is known exactly: a red disc that appears, crosses the frame and disappears is the "gore". Every
frame of the censored copy is decoded and compared with where the disc really was.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import av
import numpy as np
import pytest
from typer.testing import CliRunner
from videos import Clip, turn, write_clip, write_sound_only

from pipeline.config import Settings
from pipeline.errors import InvalidImage, NotFound, UnsupportedImage, UploadTooLarge
from pipeline.serving.local_models import local_model
from pipeline.stores.video_records import GoreSegment, VideoResult
from pipeline.video.censor import VideoCensorer, VideoModels, VideoOptions
from pipeline.video.decode import VideoLimits
from pipeline.video.markers import gore_edl, timecode
from pipeline.video.masks import FrameMask

CLIP = Clip()
VISIBLE_AT_MOST = 0.02  # Share of a frame's gore pixels that may show (the bar), in any frame.


def red(pixels: np.ndarray) -> np.ndarray:
    """The test models' idea of gore, per pixel (tests/red_pixel_models.py)."""
    rgb = pixels.astype(np.int32)
    return rgb[..., 0] - (rgb[..., 1] + rgb[..., 2]) // 2 > 60


@pytest.fixture(scope="module")
def censorer(red_model_tags) -> VideoCensorer:
    classify, classifier = local_model(red_model_tags["classifier"], False, "keras", 1)
    segment, segmenter = local_model(red_model_tags["segmenter"], False, "keras", 1)
    models = VideoModels.of(classify, segment, classifier, segmenter)
    return VideoCensorer(models, VideoLimits.from_settings(Settings()))


def options(**changes) -> VideoOptions:
    return VideoOptions(threshold=0.5, seg_threshold=0.5, **changes)


def run(censorer: VideoCensorer, path: Path, out: Path, **changes) -> VideoResult:
    return asyncio.run(censorer.censor(path, out, options(**changes)))


def decoded(path: Path) -> list[np.ndarray]:
    with av.open(str(path)) as container:
        return [frame.to_ndarray(format="rgb24") for frame in container.decode(video=0)]


def audio_packets(path: Path) -> list[bytes]:
    with av.open(str(path)) as container:
        return [bytes(p) for p in container.demux(audio=0) if p.size]


@pytest.fixture(scope="module")
def censored(censorer, tmp_path_factory) -> tuple[Path, Path, VideoResult]:
    folder = tmp_path_factory.mktemp("video")
    source = write_clip(folder / "clip.mp4")
    return source, folder / "out", run(censorer, source, folder / "out")


def test_every_frame_of_the_censored_copy_hides_the_gore_the_frame_holds(censored):
    _, out, result = censored
    frames = decoded(out / result.outputs["video"])
    assert len(frames) == CLIP.frames == result.frames
    leaks, over = [], []
    for index, pixels in enumerate(frames):
        wound = CLIP.wound_mask(index)
        if wound.any():
            leaks.append(float((red(pixels) & wound).sum() / wound.sum()))
            hidden = pixels.max(axis=2) < 16  # Black: censored.
            over.append(float((hidden & ~wound).sum() / (~wound).sum()))
    assert len(leaks) == 60  # The disc is in 2 s of the 6 at 30 fps.
    assert max(leaks) <= VISIBLE_AT_MOST, [round(x, 4) for x in leaks]
    assert sum(leaks) / len(leaks) < 0.005
    # Only the gore pixels: most of each frame around the disc stays to be seen.
    assert max(over) < 0.15, max(over)


def test_frames_outside_the_gore_segments_are_shown_as_they_were(censored):
    source, out, result = censored
    [segment] = result.segments
    assert segment.start_s == pytest.approx(2.0) and segment.end_s == pytest.approx(3.5)
    assert (segment.padded_start_s, segment.padded_end_s) == pytest.approx((1.0, 4.5))
    assert segment.peak_probability > 0.5 and result.gore and result.gore_seconds == pytest.approx(3.5)
    before, after = decoded(source), decoded(out / result.outputs["video"])
    for index in (0, 20, 29, 136, 150, 179):  # Before 1.0 s and after 4.5 s: not touched.
        assert (after[index].max(axis=2) < 16).mean() == 0, index  # No pixel censored.
        difference = np.abs(before[index].astype(int) - after[index].astype(int)).mean()
        assert difference < 8, (index, difference)  # The same picture, but for the re-encoding of its noise.
    # The disc's 60 frames, and the few within one segmented frame of them (masks are held): no more.
    assert 60 <= result.masked_frames <= 66 and not result.hidden_frames


def test_the_sound_is_copied_packet_for_packet_and_the_length_kept(censored):
    source, out, result = censored
    assert result.audio == "copied"
    assert audio_packets(out / result.outputs["video"]) == audio_packets(source)
    with av.open(str(out / result.outputs["video"])) as container:
        stream = container.streams.video[0]
        seconds = float(stream.duration * stream.time_base)
    assert abs(seconds - CLIP.seconds) <= 1 / CLIP.fps + 1e-6, seconds


def test_the_timeline_the_masks_and_the_strip_are_written_and_agree(censored):
    _, out, result = censored
    timeline = VideoResult.model_validate_json((out / result.outputs["timeline"]).read_text())
    assert timeline == result
    assert [s.time_s for s in result.sampled][:4] == [0.0, 0.5, 1.0, 1.5]
    assert all((s.probability >= 0.5) == (2.0 <= s.time_s < 4.0) for s in result.sampled)
    lines = (out / result.outputs["masks"]).read_text().splitlines()
    masks = [FrameMask.model_validate_json(line) for line in lines]
    assert set(range(60, 120)) <= {m.index for m in masks} <= set(range(57, 123))
    frames = decoded(out / result.outputs["video"])
    for mask in masks[::10]:  # The mask data says which pixels the censored copy hid.
        keep = mask.keep()
        assert keep.shape == (CLIP.height, CLIP.width)
        assert not keep[CLIP.wound_mask(mask.index)].any()
        assert (frames[mask.index][keep == 0].max(axis=1) < 16).mean() > 0.95
    import cv2

    strip = cv2.imread(str(out / result.outputs["strip"]))
    assert strip.shape[1] == 8 * 160
    assert not red(cv2.cvtColor(strip, cv2.COLOR_BGR2RGB)).any()  # Thumbnails are of the censored copy.
    # The edit decision list: one event per gore segment, at its padded start and end, in frames.
    events = [line.split() for line in (out / result.outputs["markers"]).read_text().splitlines() if line[:3].isdigit()]
    assert len(events) == len(result.segments) == 1
    _, _, _, _, source_in, source_out, record_in, record_out = events[0]
    segment = result.segments[0]
    assert (source_in, record_in) == (timecode(segment.padded_start_s, 30), timecode(segment.padded_start_s, 30))
    assert source_out == record_out == timecode(segment.padded_end_s, 30)


def test_the_edit_decision_list_keeps_a_hostile_file_name_on_its_line():
    segment = GoreSegment(start_s=1, end_s=2, peak_probability=0.9, padded_start_s=0, padded_end_s=3)
    edl = gore_edl("a\n001  AX  V  C  00:00:00:00 evil\r.mp4", 29.97, 10.0, [segment])
    assert [line[:3] for line in edl.splitlines() if line[:3].isdigit()] == ["001"]
    assert timecode(3723.5, 30) == "01:02:03:15" and timecode(1.0, 25) == "00:00:01:00"


def test_mute_leaves_the_sound_out(censorer, tmp_path):
    source = write_clip(tmp_path / "clip.mp4", Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5))
    result = run(censorer, source, tmp_path / "out", mute=True)
    assert result.audio == "muted"
    with av.open(str(tmp_path / "out" / result.outputs["video"])) as container:
        assert not container.streams.audio and len(container.streams.video) == 1


def test_a_phone_video_is_censored_upright(censorer, tmp_path):
    clip = Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5, audio=False)
    source = turn(write_clip(tmp_path / "phone.mp4", clip), 90)  # Shown turned a quarter clockwise.
    result = run(censorer, source, tmp_path / "out")
    frames = decoded(tmp_path / "out" / result.outputs["video"])
    assert result.rotation == 270 and (result.width, result.height) == (clip.height, clip.width)
    assert frames[0].shape == (clip.width, clip.height, 3)
    for index in range(15, 45):  # The disc crosses from the top down, as a player shows the video.
        wound = np.rot90(clip.wound_mask(index), k=-1)  # Where it is in the frame turned clockwise.
        assert (red(frames[index]) & wound).sum() <= VISIBLE_AT_MOST * wound.sum(), index
        hidden = frames[index].max(axis=2) < 16
        assert (hidden & wound).sum() >= 0.95 * wound.sum() and not (hidden & np.rot90(wound, 2)).all(), index


def test_a_one_frame_video_is_censored(censorer, tmp_path):
    clip = Clip(seconds=1 / 30, wound_from_s=0.0, wound_to_s=1.0, audio=False)
    result = run(censorer, write_clip(tmp_path / "one.mp4", clip), tmp_path / "out")
    [frame] = decoded(tmp_path / "out" / result.outputs["video"])
    assert result.frames == 1 and result.gore and result.masked_frames == 1
    assert not (red(frame) & clip.wound_mask(0)).any()


def test_a_video_cut_short_is_censored_as_far_as_it_goes_and_says_where_it_stopped(censorer, tmp_path):
    whole = write_clip(tmp_path / "clip.mkv", Clip(seconds=4, wound_from_s=1.0, wound_to_s=3.0))
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * 0.6)])
    result = run(censorer, cut, tmp_path / "out")
    frames = decoded(tmp_path / "out" / result.outputs["video"])
    assert 0 < len(frames) == result.frames < 120 and result.stopped and "ends before the 4.0" in result.stopped
    for index, pixels in enumerate(frames):
        wound = Clip(seconds=4, wound_from_s=1.0, wound_to_s=3.0).wound_mask(index)
        assert (red(pixels) & wound).sum() <= VISIBLE_AT_MOST * max(1, wound.sum()), index


def test_an_mp4_cut_before_its_index_is_refused_in_words(censorer, tmp_path):
    whole = write_clip(tmp_path / "clip.mp4", Clip(seconds=1))
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])  # The MP4 index (moov) is at the end.
    with pytest.raises(InvalidImage, match="cut.mp4: not a readable video"):
        run(censorer, cut, tmp_path / "out")


def test_what_is_not_a_video_is_refused_before_ffmpeg_guesses(censorer, tmp_path):
    playlist = tmp_path / "list.mp4"  # A playlist would make FFmpeg read other files.
    playlist.write_text("#EXTM3U\n#EXTINF:1,\nfile:///etc/passwd\n")
    with pytest.raises(UnsupportedImage, match="not a video this service reads"):
        run(censorer, playlist, tmp_path / "out")
    audio_only = write_sound_only(tmp_path / "sound.mp4")
    with pytest.raises(UnsupportedImage, match="no video stream"):
        run(censorer, audio_only, tmp_path / "out")


@pytest.mark.parametrize(
    ("limit", "value", "says"),
    [
        ("max_seconds", 1.5, "over the limit of 1.5 s"),
        ("max_frame_pixels", 320 * 240 - 1, "over the limit of 76,799 pixels a frame"),
        ("max_fps", 25.0, "over the limit of 25"),
        ("max_decoded_pixels", 320 * 240 * 10, "decoded pixels at frame 10"),
        ("max_bytes", 1000, "over the video limit of 1,000"),
    ],
)
def test_each_limit_refuses_with_a_413_that_names_it(censorer, tmp_path, limit, value, says):
    source = write_clip(tmp_path / "clip.mp4", Clip(seconds=2, audio=False))
    limits = VideoLimits.from_settings(Settings())
    bounded = VideoCensorer(censorer.models, VideoLimits(**{**limits.__dict__, limit: value}))
    with pytest.raises(UploadTooLarge, match=says) as refused:
        run(bounded, source, tmp_path / "out")
    assert int(refused.value.status) == 413


def test_the_command_writes_the_files_and_names_the_segments(red_model_tags, tmp_path, monkeypatch):
    from pipeline.cli import app
    from pipeline.config import get_settings

    source = write_clip(tmp_path / "clip.mp4", Clip(seconds=2, wound_from_s=0.5, wound_to_s=1.5, audio=False))
    monkeypatch.setenv("GORE_CLASSIFIER_MODEL", red_model_tags["classifier"])
    monkeypatch.setenv("GORE_SEGMENTER_MODEL", red_model_tags["segmenter"])
    get_settings.cache_clear()
    try:
        answer = CliRunner().invoke(app, ["video", str(source), "--out", str(tmp_path / "out")])
    finally:
        get_settings.cache_clear()
    assert answer.exit_code == 0, answer.output
    assert "gore 0.50-1.00 s" in answer.output and "masked 0.00-2.00 s" in answer.output
    timeline = json.loads((tmp_path / "out" / "clip.json").read_text())
    assert timeline["segments"][0]["start_s"] == 0.5 and (tmp_path / "out" / "clip.censored.mp4").stat().st_size


def test_a_video_sent_as_an_image_is_told_where_videos_go(tmp_path):
    from pipeline.imaging.decode import decode_upload

    data = write_clip(tmp_path / "clip.mkv", Clip(seconds=0.2, audio=False)).read_bytes()
    with pytest.raises(
        UnsupportedImage, match="clip.mkv: a video; this takes images .* POST /videos .* `gore-censor video`"
    ) as refused:
        decode_upload(data, "clip.mkv", max_bytes=10**8, max_pixels=10**8, max_frames=10)
    assert int(refused.value.status) == 415


def test_the_video_list_pages_newest_first_from_small_summaries(tmp_path, censored):
    """Lists read each video's summary (no timeline), newest first, a page at a time."""
    from datetime import UTC, datetime, timedelta

    from pipeline.stores.video_records import VideoRecord
    from pipeline.stores.videos import SUMMARY, VideoStore

    _, _, result = censored
    store, start = VideoStore(tmp_path), datetime(2026, 12, 1, tzinfo=UTC)
    for n in range(5):
        store.save(
            VideoRecord(
                id=f"{n:064x}",
                filename=f"v{n}.mp4",
                state="done",
                submitted_by="t",
                submitted_at=start + timedelta(minutes=n),
                result=result,
            )
        )
    first = store.summaries(limit=2)
    assert [s.filename for s in first] == ["v4.mp4", "v3.mp4"]
    assert [s.filename for s in store.summaries(limit=2, after=first[-1].id)] == ["v2.mp4", "v1.mp4"]
    assert first[0].gore and first[0].segments == len(result.segments) and first[0].seconds == result.seconds
    summary = store.folder(first[0].id) / SUMMARY
    assert summary.stat().st_size < 1000 < (store.folder(first[0].id) / "video.json").stat().st_size
    summary.unlink()  # A folder from before summaries: made from the record.
    assert store.summaries(limit=1)[0].filename == "v4.mp4"
    with pytest.raises(NotFound):
        store.summaries(after="f" * 64)


def test_a_frame_on_a_gore_hash_list_makes_its_segment_gore_and_hidden_whole(censorer, tmp_path):
    """Known content in a video, the way vPDQ matches: each sampled frame's PDQ hash against the
    lists. A clip with no red: the classifier alone finds nothing; one of its frames on a gore list
    makes the time around it a gore segment, and since the segmenter finds nothing there, those
    frames are hidden whole (fail closed); the rest is shown as it was."""
    from pipeline.known.matcher import Matcher
    from pipeline.stores.hash_lists import HashLists, ListEntry

    clip = Clip(seconds=3.0, wound_from_s=50.0, wound_to_s=51.0, audio=False)
    source = write_clip(tmp_path / "clean.mp4", clip)
    plain = run(censorer, source, tmp_path / "plain")
    assert not plain.gore and plain.known == []
    listed = next(s for s in plain.sampled if s.time_s >= 1.5)
    assert listed.pdq is not None and listed.pdq.matchable

    lists = HashLists.in_data_dir(tmp_path / "data")
    lists.create("clips", "a partner", "gore", [ListEntry(hash=listed.pdq.hash)], by="tests")
    known = VideoCensorer(censorer.models, censorer.limits, Matcher(lists, refresh_s=0).match)
    result = run(known, source, tmp_path / "known", pad_s=0.5)
    assert result.gore and [m.list_name for m in result.known] == ["clips"] and result.known[0].distance == 0
    (segment,) = result.segments
    assert segment.known == ["clips"] and segment.start_s == segment.end_s == listed.time_s
    frames = decoded(tmp_path / "known" / result.outputs["video"])
    for index, pixels in enumerate(frames):
        t = index / clip.fps
        if segment.padded_start_s + 0.05 < t < segment.padded_end_s - 0.05:
            assert pixels.max() < 40, f"frame {index} at {t:.2f} s is inside the listed segment: hidden"
        elif not segment.padded_start_s - 0.05 <= t <= segment.padded_end_s + 0.05:
            assert pixels.mean() > 40, f"frame {index} at {t:.2f} s is outside it: shown"


def test_a_video_censored_before_a_gore_list_knew_it_is_censored_again_before_anything_is_shown(censorer, tmp_path):
    """Images are matched each time they are shown; a video's outputs are made once. A done video
    one of whose sampled frames a gore list enabled since then knows, outside its gore segments,
    shows nothing more (409 from its outputs) and is queued to be censored again, its old outputs
    and clips removed; one whose listed frames lie inside its segments is shown as it is."""
    from datetime import UTC, datetime

    from starlette.testclient import TestClient

    from pipeline.errors import Conflict
    from pipeline.known.matcher import Matcher
    from pipeline.known.videos import CensoredVideos
    from pipeline.serving.routes.videos import videos_app
    from pipeline.stores.hash_lists import HashLists, ListEntry
    from pipeline.stores.video_records import VideoRecord
    from pipeline.stores.videos import OUTPUTS, WAITING, VideoStore

    clip = Clip(seconds=3.0, wound_from_s=1.0, wound_to_s=1.5, audio=False)
    source = write_clip(tmp_path / "clip.mp4", clip)
    store, video_id = VideoStore(tmp_path / "data"), "ab" * 32
    store.folder(video_id).mkdir(parents=True)
    made = store.work_folder(video_id)
    result = run(censorer, source, made, pad_s=0.0)
    (segment,) = result.segments
    store.place_outputs(video_id, made, result)
    (store.clip(video_id, "segment-1-original.mp4")).write_bytes(b"a cut")
    at = datetime(2026, 12, 1, tzinfo=UTC)
    store.save(
        VideoRecord(id=video_id, filename="clip.mp4", state="done", submitted_by="t", submitted_at=at, result=result)
    )
    inside = next(s for s in result.sampled if segment.start_s <= s.time_s <= segment.end_s)
    outside = next(s for s in result.sampled if s.time_s >= 2.5 and s.pdq is not None and s.pdq.matchable)

    lists = HashLists.in_data_dir(tmp_path / "data")
    matcher = Matcher(lists, refresh_s=0)
    checked, api = CensoredVideos(store, matcher), TestClient(videos_app(store, 10**9, matcher))
    lists.create("inside", "a partner", "gore", [ListEntry(hash=inside.pdq.hash)], by="t")
    assert checked.done(video_id).state == "done", "a listed frame the segments already hide changes nothing"
    assert api.get(f"/{video_id}/censored.mp4").status_code == 200

    lists.create("outside", "a partner", "gore", [ListEntry(hash=outside.pdq.hash)], by="t")
    answer = api.get(f"/{video_id}/censored.mp4")
    assert answer.status_code == 409 and "censored again" in answer.json()["error"]
    again = store.get(video_id)
    assert again.state == "queued" and again.result is None and (store.folder(video_id) / WAITING).exists()
    assert not any((store.folder(video_id) / name).exists() for name in OUTPUTS.values())
    assert not (store.folder(video_id) / "clips").exists(), "no cut of the old censoring is served"
    with pytest.raises(Conflict, match="queued"):
        checked.done(video_id)
