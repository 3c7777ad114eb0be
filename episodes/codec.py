"""How frames are compressed in the store: JPEG (a zarr v3 codec registered here) or zstd.

The JPEG codec is ``vla_dojo.jpeg`` (OpenCV's libjpeg, one frame per chunk): another zarr reader
needs this module imported to decode those cameras; zstd cameras need nothing. Importing
``episodes.store`` imports it.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Self

import numpy as np
from zarr.abc.codec import ArrayBytesCodec
from zarr.core.buffer import Buffer, NDBuffer
from zarr.core.common import parse_named_configuration
from zarr.registry import register_codec

from robot.schema import SchemaError

JPEG_CODEC_NAME = "vla_dojo.jpeg"


def encode_jpeg(rgb: np.ndarray, quality: int) -> bytes:
    """``(H, W, 3)`` uint8 RGB -> JPEG bytes (OpenCV/libjpeg, baseline, 4:2:0)."""
    import cv2  # lazily: only JPEG cameras need it

    bgr = np.ascontiguousarray(rgb[..., ::-1])
    ok, buf = cv2.imencode(".jpg", bgr, [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    if not ok:
        raise ValueError(f"JPEG encoding of a {rgb.shape} frame failed")
    return buf.tobytes()


def decode_jpeg(data: bytes | memoryview) -> np.ndarray:
    """JPEG bytes -> ``(H, W, 3)`` uint8 RGB. Deterministic for a given libjpeg build."""
    import cv2

    bgr = cv2.imdecode(np.frombuffer(data, dtype=np.uint8), cv2.IMREAD_COLOR)
    if bgr is None:
        raise ValueError(f"{len(data)} bytes are not a decodable JPEG image")
    return np.ascontiguousarray(bgr[..., ::-1])


@dataclass(frozen=True)
class JpegCodec(ArrayBytesCodec):
    """zarr v3 codec ``vla_dojo.jpeg``: a chunk of one ``(1, H, W, 3)`` uint8 RGB frame <-> JPEG."""

    is_fixed_size = False

    quality: int = 90

    def __init__(self, *, quality: int = 90) -> None:
        q = int(quality)
        if not 1 <= q <= 100:
            raise ValueError(f"{JPEG_CODEC_NAME}: quality={quality} must be in [1, 100]")
        object.__setattr__(self, "quality", q)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Self:
        _, configuration = parse_named_configuration(
            data, JPEG_CODEC_NAME, require_configuration=False
        )
        return cls(**(configuration or {}))

    def to_dict(self) -> dict[str, Any]:
        return {"name": JPEG_CODEC_NAME, "configuration": {"quality": self.quality}}

    def validate(self, *, shape: tuple[int, ...], dtype: Any, chunk_grid: Any) -> None:
        native = dtype.to_native_dtype()
        if native != np.uint8 or len(shape) not in (3, 4) or shape[-1] != 3:
            raise ValueError(
                f"{JPEG_CODEC_NAME} encodes (T, H, W, 3) uint8 RGB arrays, not {shape} {native}"
            )

    def _encode_sync(self, chunk_array: NDBuffer, chunk_spec: Any) -> Buffer | None:
        arr = np.asarray(chunk_array.as_numpy_array())
        frame = arr.reshape(arr.shape[-3:])
        return chunk_spec.prototype.buffer.from_bytes(encode_jpeg(frame, self.quality))

    def _decode_sync(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        frame = decode_jpeg(chunk_bytes.to_bytes())
        shape = tuple(chunk_spec.shape)
        if frame.size != math.prod(shape):
            raise ValueError(
                f"{JPEG_CODEC_NAME}: chunk decodes to {frame.shape}, expected a chunk of {shape}"
            )
        return chunk_spec.prototype.nd_buffer.from_numpy_array(frame.reshape(shape))

    async def _encode_single(self, chunk_array: NDBuffer, chunk_spec: Any) -> Buffer | None:
        return await asyncio.to_thread(self._encode_sync, chunk_array, chunk_spec)

    async def _decode_single(self, chunk_bytes: Buffer, chunk_spec: Any) -> NDBuffer:
        return await asyncio.to_thread(self._decode_sync, chunk_bytes, chunk_spec)

    def compute_encoded_size(self, input_byte_length: int, chunk_spec: Any) -> int:
        raise NotImplementedError


register_codec(JPEG_CODEC_NAME, JpegCodec)


@dataclass(frozen=True)
class ImageCodec:
    """How one camera's frames are compressed: ``"jpeg"`` (lossy, ``quality`` 1-100) or
    ``"zstd"`` (lossless, ``level`` 1-22)."""

    kind: str = "jpeg"
    quality: int = 90
    level: int = 3

    def __post_init__(self) -> None:
        if self.kind not in ("jpeg", "zstd"):
            raise SchemaError(f"ImageCodec: kind={self.kind!r} must be 'jpeg' or 'zstd'")
        if not 1 <= int(self.quality) <= 100:
            raise SchemaError(f"ImageCodec: quality={self.quality} must be in [1, 100]")
        if not 1 <= int(self.level) <= 22:
            raise SchemaError(f"ImageCodec: level={self.level} must be in [1, 22]")

    def to_json(self) -> dict[str, Any]:
        return {"kind": self.kind, "quality": int(self.quality), "level": int(self.level)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> ImageCodec:
        return cls(
            kind=str(data.get("kind", "jpeg")),
            quality=int(data.get("quality", 90)),
            level=int(data.get("level", 3)),
        )
