"""What a file is, from its first bytes only (never from its name): the video containers we read."""

from __future__ import annotations

from typing import Literal

# ISO BMFF (MP4, MOV) files start with a box whose type is one of these; Matroska (MKV, WebM) with EBML's id.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"wide", b"skip")
_MATROSKA = b"\x1a\x45\xdf\xa3"
VIDEO_NAMES = "MP4, MOV, MKV or WebM"


def video_container(head: bytes) -> Literal["mov", "matroska"] | None:
    """FFmpeg's demuxer for a video these bytes start (12 are enough), or None."""
    if head[:4] == _MATROSKA:
        return "matroska"
    if head[4:8] in _ISO_BOXES:
        return "mov"
    return None
