"""A JPEG's size from its header, read before anything decodes it.

A 3 MB JPEG can declare 16000x16000 pixels: decoded, that is 768 MB of BGR (and more inside the
decoder). Cameras and model-server clients send JPEGs; their size is checked here first, in
microseconds, from the frame header (SOFn), without decoding a pixel.
"""

from __future__ import annotations

# SOF0..SOF15, except DHT (C4), JPG (C8) and DAC (CC), which share the range
_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}
_STANDALONE = {0x01, *range(0xD0, 0xD8)}  # TEM, RST0-7: no length field


class BadJpeg(ValueError):
    """Not a JPEG, cut short before its frame header, or declaring no size; the message says which."""


def jpeg_size(data: bytes | bytearray | memoryview) -> tuple[int, int] | None:
    """(width, height) from the frame header; None when ``data`` ends before it (read more).

    Raises BadJpeg when ``data`` is not a JPEG or its header is malformed.
    """
    mv = memoryview(data)
    n = len(mv)
    if n < 2:
        return None
    if mv[0] != 0xFF or mv[1] != 0xD8:
        raise BadJpeg("not a JPEG (no start-of-image marker)")
    i = 2
    while True:
        while i < n and mv[i] == 0xFF and i + 1 < n and mv[i + 1] == 0xFF:
            i += 1  # fill bytes
        if i + 1 >= n:
            return None
        if mv[i] != 0xFF:
            raise BadJpeg("malformed JPEG header (marker expected)")
        marker = mv[i + 1]
        if marker in _STANDALONE:
            i += 2
            continue
        if marker in (0xD8, 0xD9, 0xDA):  # SOI again, EOI or scan data before any frame header
            raise BadJpeg("JPEG without a frame header")
        if i + 4 > n:
            return None
        length = (mv[i + 2] << 8) | mv[i + 3]
        if length < 2:
            raise BadJpeg("malformed JPEG header (segment length)")
        if marker in _SOF:
            if i + 9 > n:
                return None
            height = (mv[i + 5] << 8) | mv[i + 6]
            width = (mv[i + 7] << 8) | mv[i + 8]
            if width == 0 or height == 0:
                raise BadJpeg(f"JPEG declares a {width}x{height} image")
            return width, height
        i += 2 + length


class TooLarge(BadJpeg):
    """The JPEG is larger than allowed (its size read from the header; nothing decoded)."""

    def __init__(self, width: int, height: int, message: str) -> None:
        super().__init__(message)
        self.width, self.height = width, height


def check_jpeg(
    data: bytes | bytearray | memoryview, max_side: int, what: str = "max_frame_side"
) -> tuple[int, int]:
    """(width, height) if ``data`` is a whole-header JPEG no side of which exceeds ``max_side``.

    Raises TooLarge (``frames of WxH exceed <what> N``) or BadJpeg with the reason otherwise.
    """
    size = jpeg_size(data)
    if size is None:
        raise BadJpeg("JPEG cut short before its frame header" if len(data) else "empty JPEG")
    w, h = size
    if max(w, h) > max_side:
        raise TooLarge(w, h, f"frames of {w}x{h} exceed {what} {max_side}")
    return size
