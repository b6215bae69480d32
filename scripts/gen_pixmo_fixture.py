#!/usr/bin/env python3
"""Tiny PixMo-Cap parquet fixture for geom's parquet reader (src/data/pixmo.rs).

PixMo-Cap (Hugging Face dataset ``allenai/pixmo-cap``, revision 28c9d38) is
four parquet shards ``data/train-0000N-of-00004.parquet`` with the columns

* ``image_url``   string          the image's web address (images are not shipped)
* ``caption``     string          the long caption written by an LLM from the transcripts
* ``transcripts`` list<string>    the annotators' audio transcripts

Molmo's downloader (allenai/molmo ``olmo/data/download_urls.py``) saves each
image as ``<PIXMO_IMAGE_DIR>/<sha256(image_url).hexdigest()>``, no extension.
Re-uploads with the images embedded (e.g. ``anthracite-org/pixmo-cap-images``)
add a column ``image`` holding Hugging Face ``datasets``' ``Image`` feature,
``struct<bytes: binary, path: string>``.

This script writes, into ``tests/fixtures/pixmo/`` relative to the repo root
(whatever the working directory):

* ``data/train-00000-of-00002.parquet``  5 URL-only rows (snappy), the real column names and types
* ``images/<sha256(url)>``               PNGs for the first 2 of those URLs only, named as molmo's
  downloader names them (the other 3 play URLs that could not be fetched)
* ``data/train-00001-of-00002.parquet``  5 rows with embedded PNG bytes (zstd)
* ``bad/no_caption.parquet``             a shard without the ``caption`` column

Everything is deterministic (pure-Python PNG encoder, no timestamps), well under 100 KB.

Run (from anywhere)::

    pip install -r scripts/requirements.txt   # pyarrow
    python scripts/gen_pixmo_fixture.py
"""

import hashlib
import json
import shutil
import struct
import zlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

OUT = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "pixmo"

CAPTIONS = [
    "The image shows a red disc on a dark blue background, slightly left of centre.",
    "A tall narrow picture: green vertical stripes alternate with white ones.",
    "A small square photo of a yellow checkerboard pattern with soft edges.",
    "A wide picture of a horizon: orange sky above a flat grey sea.",
    "Close-up of a purple gradient that fades to black at the bottom right.",
    "A diagram with three blue circles connected by thin black lines.",
    "A pale pink square with a single dark dot in its exact centre.",
    "Two overlapping rectangles, one teal and one coral, on a cream ground.",
    "A noisy texture of grey speckles, like a photo of gravel from above.",
    "A cyan triangle pointing upwards, drawn on a white background.",
]


def png(width: int, height: int, seed: int) -> bytes:
    """A deterministic RGB PNG (filter 0 rows, zlib level 9)."""
    rows = bytearray()
    for y in range(height):
        rows.append(0)
        for x in range(width):
            rows += bytes(((x * 37 + seed * 50) % 256, (y * 53 + seed * 90) % 256, ((x + y) * 11 + seed * 30) % 256))

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(bytes(rows), 9)) + chunk(b"IEND", b"")


def url_hash(url: str) -> str:
    """molmo ``download_urls.compute_hash``: sha256 of the URL's UTF-8 bytes, hex."""
    return hashlib.sha256(url.encode("utf-8")).hexdigest()


def transcripts(i: int) -> list:
    n = 1 + i % 2
    return [f"um so this is picture {i} and it shows {CAPTIONS[i].lower()[:-1]} (take {t})" for t in range(n)]


# Hugging Face `datasets` records the features in the schema metadata.
HF_URL = {"info": {"features": {
    "image_url": {"dtype": "string", "_type": "Value"},
    "caption": {"dtype": "string", "_type": "Value"},
    "transcripts": {"feature": {"dtype": "string", "_type": "Value"}, "_type": "Sequence"},
}}}
HF_EMBEDDED = {"info": {"features": {
    "image": {"_type": "Image"},
    **HF_URL["info"]["features"],
}}}
URL_SCHEMA = pa.schema(
    [("image_url", pa.string()), ("caption", pa.string()), ("transcripts", pa.list_(pa.string()))],
    metadata={"huggingface": json.dumps(HF_URL)},
)
IMAGE_TYPE = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
EMBEDDED_SCHEMA = pa.schema(
    [("image", IMAGE_TYPE)] + list(zip(URL_SCHEMA.names, URL_SCHEMA.types)),
    metadata={"huggingface": json.dumps(HF_EMBEDDED)},
)


def main() -> None:
    if OUT.exists():
        shutil.rmtree(OUT)
    (OUT / "data").mkdir(parents=True)
    (OUT / "images").mkdir()
    (OUT / "bad").mkdir()

    # Shard 0: URLs only; the first two images "downloaded".
    urls = [f"https://images.example.org/pixmo/{i:04d}.png" for i in range(5)]
    for i, url in enumerate(urls[:2]):
        (OUT / "images" / url_hash(url)).write_bytes(png(24 + 8 * i, 16 + 12 * i, i))
    table = pa.table(
        {"image_url": urls, "caption": CAPTIONS[:5], "transcripts": [transcripts(i) for i in range(5)]},
        schema=URL_SCHEMA,
    )
    pq.write_table(table, OUT / "data" / "train-00000-of-00002.parquet", compression="snappy")

    # Shard 1: images embedded as datasets' Image feature {bytes, path}.
    rows = range(5, 10)
    images = [{"bytes": png(16 + 4 * i, 30 - 2 * i, i), "path": f"{i:04d}.png"} for i in rows]
    table = pa.table(
        {
            "image": images,
            "image_url": [f"https://images.example.org/pixmo/{i:04d}.png" for i in rows],
            "caption": CAPTIONS[5:],
            "transcripts": [transcripts(i) for i in rows],
        },
        schema=EMBEDDED_SCHEMA,
    )
    pq.write_table(table, OUT / "data" / "train-00001-of-00002.parquet", compression="zstd")

    # A shard that lacks the caption column.
    pq.write_table(
        pa.table({"image_url": urls[:2], "transcripts": [transcripts(0), transcripts(1)]}),
        OUT / "bad" / "no_caption.parquet",
        compression="snappy",
    )

    total = sum(p.stat().st_size for p in OUT.rglob("*") if p.is_file())
    print(f"wrote {OUT} ({total} bytes)")
    assert total < 100_000, total


if __name__ == "__main__":
    main()
