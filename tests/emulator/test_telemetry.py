"""The telemetry pipe's frames: read whole however they are cut, never fatal."""

from __future__ import annotations

import logging
import os

import pytest
from hypothesis import given
from hypothesis import strategies as st

from lamina.emulator.telemetry import FrameReader, TelemetryPipe
from lamina.runtime.logsink import ERROR, INFO, encode_frame, frame_type


def frame(text: str, level: int = INFO, is_json: bool = False) -> bytes:
    return encode_frame(text.encode(), frame_type(level, is_json), 1_700_000_000_000)


def feed_in_pieces(data: bytes, cuts: list[int]) -> tuple[FrameReader, list[str]]:
    reader = FrameReader()
    records: list[str] = []
    start = 0
    for cut in [*sorted({min(cut, len(data)) for cut in cuts}), len(data)]:
        records += reader.feed(data[start:cut])
        start = cut
    return reader, records + reader.finish()


def test_frames_become_records_with_their_newlines() -> None:
    data = frame("one") + frame("[ERROR] boom\nTraceback:\n  line\n") + frame("")

    assert FrameReader().feed(data) == ["one", "[ERROR] boom\nTraceback:\n  line", ""]


def test_a_frame_cut_anywhere_waits_for_the_rest() -> None:
    reader = FrameReader()
    data = frame("naïve ✓ record")

    assert reader.feed(data[:3]) == []
    assert reader.feed(data[3:20]) == []
    assert reader.feed(data[20:]) == ["naïve ✓ record"]
    assert reader.error is None


records_text = st.lists(st.text(max_size=300), max_size=8)


@given(records_text, st.lists(st.integers(min_value=0, max_value=3000), max_size=20))
def test_records_come_out_whole_and_in_order_however_reads_cut_them(
    texts: list[str], cuts: list[int]
) -> None:
    data = b"".join(
        encode_frame(t.encode("utf-8", "surrogatepass"), frame_type(ERROR, True), 0)
        for t in texts
    )

    reader, records = feed_in_pieces(data, cuts)

    expected = [
        t.encode("utf-8", "surrogatepass").decode("utf-8", "replace") for t in texts
    ]
    assert records == [t[:-1] if t.endswith("\n") else t for t in expected]
    assert reader.error is None


@given(st.binary(max_size=500), st.lists(st.integers(0, 600), max_size=10))
def test_any_bytes_at_all_never_raise(data: bytes, cuts: list[int]) -> None:
    _, records = feed_in_pieces(data, cuts)

    assert all(isinstance(record, str) for record in records)


@given(
    st.text(st.characters(blacklist_characters="\r"), min_size=1),
    st.lists(st.integers(0, 400), max_size=10),
)
def test_a_runtime_that_writes_plain_text_still_has_every_line_logged(
    text: str, cuts: list[int]
) -> None:
    data = text.encode("utf-8", "surrogatepass")

    reader, records = feed_in_pieces(b"\n" + data, cuts)

    lines = data.split(b"\n")
    expected = [""] + [line.decode("utf-8", "replace") for line in lines]
    assert records == (expected if lines[-1] else expected[:-1])
    assert reader.error is not None


def test_text_where_frames_belong_is_read_as_lines_from_there_on() -> None:
    reader = FrameReader()

    records = reader.feed(frame("framed") + b"plain text\nmore")
    records += reader.feed(b" text\n" + frame("late"))

    assert records[:3] == ["framed", "plain text", "more text"]
    assert reader.error is not None
    # Once lost, the stream stays text: a later frame's bytes are not dropped.
    assert "late" in reader.finish()[0]


def test_an_absurd_length_is_malformed_not_a_long_wait() -> None:
    reader = FrameReader(max_record_bytes=1024)
    bad = bytes.fromhex("a55a0003") + (4096).to_bytes(4, "big") + bytes(8)

    records = reader.feed(frame("ok") + bad + b"tail\n")

    assert records[0] == "ok"
    assert reader.error is not None
    assert records[-1].endswith("tail")


def test_a_frame_cut_off_by_the_end_of_the_pipe_keeps_what_came() -> None:
    reader = FrameReader()
    data = frame("the whole record")

    assert reader.feed(data[:-4]) == []
    assert reader.finish() == ["the whole re"]
    assert reader.error is not None
    assert FrameReader().finish() == []


def test_the_pipe_warns_once_and_keeps_the_text(
    caplog: pytest.LogCaptureFixture,
) -> None:
    records: list[str] = []
    pipe = TelemetryPipe(records.append, "fn")
    os.write(pipe.write_fd, frame("first") + b"not a frame\nsecond line\n")
    pipe.close_write_end()

    with caplog.at_level(logging.WARNING, logger="lamina.emulator.telemetry"):
        pipe.drain()

    assert records == ["first", "not a frame", "second line"]
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "fn" in warnings[0].getMessage()
    pipe.close()  # already closed at the end of the pipe: nothing happens
