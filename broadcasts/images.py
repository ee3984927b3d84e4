"""PNG/JPEG header reading and a tiny PNG writer, without Pillow.

Rich menu images must be PNG or JPEG, 2500×1686 or 2500×843 and at most 1 MB; the sizes are
read from the file header. The writer draws flat-coloured panels for the demo menus."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
_JPEG_SOF = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF}


@dataclass(frozen=True)
class ImageInfo:
    content_type: str  # "image/png" or "image/jpeg"
    width: int
    height: int


def image_info(data: bytes) -> ImageInfo | None:
    """The format and size of a PNG or JPEG, or ``None`` for anything else."""
    if data.startswith(PNG_SIGNATURE) and len(data) >= 24 and data[12:16] == b"IHDR":
        width, height = struct.unpack(">II", data[16:24])
        return ImageInfo("image/png", width, height)
    if data.startswith(b"\xff\xd8"):
        return _jpeg_info(data)
    return None


def _jpeg_info(data: bytes) -> ImageInfo | None:
    index = 2
    while index + 4 <= len(data):
        if data[index] != 0xFF:
            return None
        marker = data[index + 1]
        if marker == 0xFF:  # fill byte
            index += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:  # no length
            index += 2
            continue
        length = struct.unpack(">H", data[index + 2 : index + 4])[0]
        if marker in _JPEG_SOF:
            if index + 9 > len(data):
                return None
            height, width = struct.unpack(">HH", data[index + 5 : index + 9])
            return ImageInfo("image/jpeg", width, height)
        if marker == 0xD9 or length < 2:
            return None
        index += 2 + length
    return None


def _chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def png_panels(
    width: int, height: int, colours: list[tuple[int, int, int]], *, gap: int = 8
) -> bytes:
    """An RGB PNG of equal vertical panels, one per colour, separated by white gaps."""
    panel = width // len(colours)
    row = bytearray()
    for x in range(width):
        index = min(x // panel, len(colours) - 1)
        edge = x % panel < gap // 2 or x % panel >= panel - gap // 2
        row += bytes((255, 255, 255)) if edge else bytes(colours[index])
    white = b"\x00" + bytes((255, 255, 255)) * width
    body = b"\x00" + bytes(row)
    rows = [white if y < gap // 2 or y >= height - gap // 2 else body for y in range(height)]
    raw = b"".join(rows)
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        PNG_SIGNATURE
        + _chunk(b"IHDR", header)
        + _chunk(b"IDAT", zlib.compress(raw, 9))
        + _chunk(b"IEND", b"")
    )
