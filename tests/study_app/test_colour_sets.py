"""Colour stimulus sets in the study app: RGB PNGs pass the PNG check (and lose their text chunks) as
grayscale ones do, a malformed header is refused, and identify asks for named classes by name."""
from __future__ import annotations

import io
import struct
import zlib
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image
from PIL.PngImagePlugin import PngInfo

from advlegit.study_app.pngsafe import NotAPNG, strip_png
from advlegit.study_app.tasks import TASKS

CIFAR = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


def _png(mode: str, shape: tuple[int, ...], text: str | None = None) -> bytes:
    info = PngInfo()
    if text:
        info.add_text("Comment", text)
    buf = io.BytesIO()
    Image.fromarray(np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8), mode).save(
        buf, "PNG", pnginfo=info
    )
    return buf.getvalue()


@pytest.mark.parametrize("mode, shape", [("L", (28, 28)), ("RGB", (32, 32, 3)), ("RGBA", (32, 32, 4))])
def test_grayscale_and_colour_pngs_pass_with_their_pixels_and_without_text(mode, shape):
    data = _png(mode, shape, text="defense=gradreg")
    clean = strip_png(data)
    assert b"gradreg" not in clean
    with Image.open(io.BytesIO(clean)) as a, Image.open(io.BytesIO(data)) as b:
        assert a.size == (shape[1], shape[0])
        assert a.mode == mode and np.array_equal(np.asarray(a), np.asarray(b))


def _chunk(ctype: bytes, body: bytes) -> bytes:
    return struct.pack(">I", len(body)) + ctype + body + struct.pack(">I", zlib.crc32(ctype + body) & 0xFFFFFFFF)


def _with_header(width=32, height=32, depth=8, color=2, interlace=0) -> bytes:
    data = _png("RGB", (32, 32, 3))
    rest = data[8 + 25:]  # after the signature and the IHDR chunk
    return data[:8] + _chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, depth, color, 0, 0, interlace)) + rest


@pytest.mark.parametrize("header, message", [
    (dict(color=5), "unknown PNG colour type 5"),
    (dict(depth=4), "bit depth 4 is not allowed for RGB"),
    (dict(width=0), "outside"),
    (dict(width=100_000), "outside"),
    (dict(interlace=2), "interlace"),
])
def test_a_malformed_header_is_refused(header, message):
    with pytest.raises(NotAPNG, match=message):
        strip_png(_with_header(**header))


def test_the_header_must_come_first():
    data = _png("RGB", (8, 8, 3))
    moved = data[:8] + _chunk(b"tEXt", b"Comment\x00hi") + data[8:]
    with pytest.raises(NotAPNG, match="IHDR must be the first chunk"):
        strip_png(moved)


def test_identify_asks_for_named_classes_by_name():
    identify = TASKS["identify"]
    practice = SimpleNamespace(kind="practice", expected="3", prompt_label=None)
    assert identify.prompt(practice, CIFAR) == "Which of these is it?"
    assert identify.feedback(practice, CIFAR) == "This one is a cat."
    digits = [str(d) for d in range(10)]
    assert identify.prompt(practice, digits) == "Which digit is this?"
    assert (
        identify.feedback(SimpleNamespace(kind="practice", expected="8", prompt_label=None), digits)
        == "This one is an 8."
    )
