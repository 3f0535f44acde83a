"""Each written format's encoders, one run each: llenhance's own against the libraries'.

llenhance's streaming encoder is set against libvips, Pillow and OpenCV on the same photo-like
8-bit RGB image (issue #18: keep a hand-written encoder only where it beats the library on time
or memory, and say so in one line: the verdicts under the table).

    python -m benchmarks.encoders [--megapixels 100] [--formats png,jpeg,tiff,webp,bmp]
                                  [--threads 1] [--workdir DIR]

The image is a 3840x2160 photo from ``unpaired/real-hd`` brightened like an enhanced result
(a gamma curve, and noise of one level against banding), shrunk or mirror-tiled to
``--megapixels`` at 16:9 (a smooth gradient with noise when the photo is missing). Its rows are
spooled to a raw file first, as the tool holds rows on disk, and every encode starts from that
file (in the page cache) in a fresh process and ends once its output is fsynced:

* llenhance: :class:`~llenhance.io.write.ImageWriter` with the tool's defaults, fed bands of
  rows as tall as a tile row's step (tile less overlap), as ``llenhance enhance`` feeds it;
* libvips: the same bands spooled to an unlinked file (as ``ImageWriter`` spools WebP and BMP
  rows), which ``rawload`` maps and its saver saves: the streaming alternative, which needs the
  rows on disk first (the spooling is timed too);
* Pillow, OpenCV: the whole image read into memory (they encode only whole images), saved.

Settings are llenhance's: the JPEG/WebP quality of ``ImageWriter``, zlib level
``PNG_COMPRESSION`` for PNG and TIFF, JPEG 4:2:0 (Pillow's default), and where the library lets
it be chosen PNG's Up filter and TIFF's horizontal predictor (Pillow picks PNG filters itself,
and its TIFF takes libtiff's zlib level, 6). libvips and OpenCV get ``--threads`` threads
(default 1: the tool encodes in one thread while the model computes).
No ICC profile or EXIF is written, so what each library keeps of them is not compared.

Each process first encodes a 16x16 image, untimed, so first-call costs are not counted.
Columns: seconds; peak MB, the rise of the process's peak resident memory (VmHWM, reset after
that warm-up); private MB, the rise of its private (anonymous) memory, sampled every
2 ms, which leaves out the input pages libvips maps (the page cache gives them back); file MB;
identical: the decoded file against the input for lossless formats, against llenhance's file
for lossy ones (PSNR against the input beside it). A format's verdict weighs seconds and private
MB: a library is "as good" when it is no more than 10% (and 0.02 s, 8 MB) slower or larger in
memory than llenhance and its output is as good (identical pixels, or PSNR within 0.1 dB).
"""

from __future__ import annotations

import argparse
import hashlib
import inspect
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from benchmarks._common import REAL_HD
from llenhance.defaults import DEFAULT_TILE, PNG_COMPRESSION
from llenhance.io.formats import FORMATS, Format

LOSSLESS = frozenset({"PNG", "TIFF", "BMP"})
BAND = 256  # rows read, written and compared at once outside llenhance's own writer
ENCODERS = ("llenhance", "libvips", "Pillow", "OpenCV")
TIME_MARGIN, SECONDS_MARGIN, MB_MARGIN = 1.10, 0.02, 8.0
SAMPLE_SECONDS = 0.002
PSNR_MARGIN = 0.1


def written_formats() -> dict[str, Format]:
    """The formats llenhance writes, by lower-case name and by extension (``jpg``, ``tif``)."""
    names: dict[str, Format] = {}
    for spec in FORMATS:
        if spec.extensions:
            names[spec.name.lower()] = spec
            names.update({ext[1:]: spec for ext in spec.extensions})
    return names


def tool_settings(threads: int) -> dict:
    """What every encoder is given: the tool's JPEG and WebP quality (``ImageWriter``'s
    default), its zlib level for PNG and TIFF, and the library threads."""
    from llenhance.io.write import ImageWriter

    quality = inspect.signature(ImageWriter).parameters["quality"].default
    return {"quality": quality, "level": PNG_COMPRESSION, "threads": threads}


# -- the image ------------------------------------------------------------------------------


def image_size(megapixels: float) -> tuple[int, int]:
    """(height, width) of a 16:9 image of about ``megapixels``, both even."""
    width = round((megapixels * 1e6 * 16 / 9) ** 0.5 / 2) * 2
    return max(2, round(width * 9 / 16 / 2) * 2), max(2, width)


def photo_tile() -> np.ndarray | None:
    """The first 3840x2160 photo of ``unpaired/real-hd``, brightened like an enhanced result:
    a gamma curve taking its mean to about 0.4, and Gaussian noise of one level so the few
    levels of a dark photo do not band (banding would flatter the lossless encoders)."""
    import cv2

    if not REAL_HD.is_dir():
        return None
    for path in sorted(REAL_HD.iterdir()):
        photo = cv2.imread(str(path), cv2.IMREAD_COLOR)
        if photo is not None and photo.shape[:2] == (2160, 3840):
            break
    else:
        return None
    rgb = cv2.cvtColor(photo, cv2.COLOR_BGR2RGB).astype(np.float32) / 255
    gamma = np.log(0.4) / np.log(max(float(rgb.mean()), 1e-3))
    rgb = np.power(rgb, min(gamma, 1.0)) * 255
    rgb += np.random.default_rng(0).normal(0, 1, rgb.shape).astype(np.float32)
    return np.clip(rgb + 0.5, 0, 255).astype(np.uint8)


def gradient_band(top: int, rows: int, height: int, width: int) -> np.ndarray:
    """Rows [top, top + rows) of a smooth colour gradient with noise (no photo at hand)."""
    y = np.arange(top, top + rows, dtype=np.float32)[:, None, None] / height
    x = np.arange(width, dtype=np.float32)[None, :, None] / width
    rgb = np.concatenate(
        np.broadcast_arrays(
            60 + 150 * x * np.ones_like(y),
            40 + 120 * y * np.ones_like(x),
            90 + 80 * np.sin(6 * x + 4 * y),
        ),
        axis=2,
    )
    rgb += np.random.default_rng(top).normal(0, 3, rgb.shape).astype(np.float32)
    return np.clip(rgb, 0, 255).astype(np.uint8)


def write_spool(path: Path, height: int, width: int) -> str:
    """Write the benchmark image to ``path`` as raw RGB rows; what it is made of."""
    import cv2

    tile = photo_tile()
    with path.open("wb") as file:
        if tile is None:
            for top in range(0, height, BAND):
                gradient_band(top, min(BAND, height - top), height, width).tofile(file)
            return "a smooth gradient with noise (no 3840x2160 photo in unpaired/real-hd)"
        if height <= tile.shape[0] and width <= tile.shape[1]:
            cv2.resize(tile, (width, height), interpolation=cv2.INTER_AREA).tofile(file)
            return "a 3840x2160 photo, brightened and shrunk"
        pad = ((0, max(0, height - tile.shape[0])), (0, max(0, width - tile.shape[1])), (0, 0))
        np.pad(tile, pad, mode="symmetric")[:height, :width].tofile(file)
        return "a 3840x2160 photo, brightened and mirror-tiled"


def tile_step() -> int:
    """Rows one row of default tiles finishes (tile less overlap): the bands ``llenhance
    enhance`` hands its writer. Read here, not at import: :mod:`llenhance.tiling` loads torch."""
    from llenhance.tiling import DEFAULT_OVERLAP

    return DEFAULT_TILE - DEFAULT_OVERLAP


class Spool:
    """The raw RGB rows on disk, read as ``SpooledImage`` reads them (no memory map), and the
    height of the bands the tool's writer is fed."""

    def __init__(self, path: str, height: int, width: int, band: int) -> None:
        self.path, self.height, self.width, self.band = path, height, width, band

    def rows(self, top: int, bottom: int) -> np.ndarray:
        row_bytes = self.width * 3
        count = (bottom - top) * row_bytes
        band = np.fromfile(self.path, np.uint8, count=count, offset=top * row_bytes)
        return band.reshape(bottom - top, self.width, 3)

    def whole(self) -> np.ndarray:
        return self.rows(0, self.height)


# -- the encoders, each in its own process --------------------------------------------------


def encode_llenhance(fmt: str, spool: Spool, out: str, settings: dict) -> None:
    from llenhance.io.write import ImageWriter

    with ImageWriter(out, spool.height, spool.width, overwrite=True) as writer:
        for top in range(0, spool.height, spool.band):
            writer.write(spool.rows(top, min(top + spool.band, spool.height)))


def encode_libvips(fmt: str, spool: Spool, out: str, settings: dict) -> None:
    """The rows, as they arrive, spooled to an unlinked file beside the output (as
    ``ImageWriter`` spools WebP and BMP rows), which libvips then maps and saves."""
    import pyvips

    with tempfile.TemporaryFile(dir=Path(out).parent) as rows:
        for top in range(0, spool.height, spool.band):
            spool.rows(top, min(top + spool.band, spool.height)).tofile(rows)
        rows.flush()
        name = f"/proc/self/fd/{rows.fileno()}"
        image = pyvips.Image.rawload(name, spool.width, spool.height, 3)
        save_with_libvips(fmt, image.copy(interpretation="srgb"), out, settings)


def save_with_libvips(fmt: str, image: object, out: str, settings: dict) -> None:
    if fmt == "PNG":
        image.pngsave(out, compression=settings["level"], filter="up")
    elif fmt == "JPEG":
        image.jpegsave(out, Q=settings["quality"], subsample_mode="on")
    elif fmt == "TIFF":
        level = settings["level"]
        image.tiffsave(out, compression="deflate", predictor="horizontal", level=level)
    elif fmt == "WEBP":
        image.webpsave(out, Q=settings["quality"])
    else:
        raise ValueError(f"libvips has no {fmt} saver here")


def encode_pillow(fmt: str, spool: Spool, out: str, settings: dict) -> None:
    from PIL import Image

    pixels = spool.whole()
    image = Image.fromarray(pixels, "RGB")
    del pixels  # Pillow holds its own copy
    options: dict = {
        "PNG": {"compress_level": settings["level"]},
        "JPEG": {"quality": settings["quality"]},
        "TIFF": {"compression": "tiff_adobe_deflate", "tiffinfo": {317: 2}},  # no level option
        "WEBP": {"quality": settings["quality"]},
        "BMP": {},
    }[fmt]
    image.save(out, fmt, **options)


def encode_opencv(fmt: str, spool: Spool, out: str, settings: dict) -> None:
    import cv2

    pixels = spool.whole()
    cv2.cvtColor(pixels, cv2.COLOR_RGB2BGR, dst=pixels)
    params = {
        "PNG": [
            cv2.IMWRITE_PNG_COMPRESSION,
            settings["level"],
            cv2.IMWRITE_PNG_FILTER,
            cv2.IMWRITE_PNG_FILTER_UP,
        ],
        "JPEG": [cv2.IMWRITE_JPEG_QUALITY, settings["quality"]],
        "TIFF": [
            cv2.IMWRITE_TIFF_COMPRESSION,
            cv2.IMWRITE_TIFF_COMPRESSION_ADOBE_DEFLATE,
            cv2.IMWRITE_TIFF_PREDICTOR,
            cv2.IMWRITE_TIFF_PREDICTOR_HORIZONTAL,
            cv2.IMWRITE_TIFF_COMPRESSION_LEVEL,
            settings["level"],
        ],
        "WEBP": [cv2.IMWRITE_WEBP_QUALITY, settings["quality"]],
        "BMP": [],
    }[fmt]
    if not cv2.imwrite(out, pixels, params):
        raise OSError(f"OpenCV could not write {out}")


ENCODE: dict[str, Callable[[str, Spool, str, dict], None]] = {
    "llenhance": encode_llenhance,
    "libvips": encode_libvips,
    "Pillow": encode_pillow,
    "OpenCV": encode_opencv,
}


def unavailable(encoder: str, fmt: str) -> str | None:
    """Why ``encoder`` cannot write ``fmt`` here, or None if it can."""
    if encoder == "libvips":
        import pyvips

        saver = {"PNG": "pngsave", "JPEG": "jpegsave", "TIFF": "tiffsave", "WEBP": "webpsave"}
        if not pyvips.type_find("VipsOperation", saver.get(fmt, "magicksave")):
            return f"this libvips has no {fmt} saver"
    if encoder == "OpenCV":
        import cv2

        extension = written_formats()[fmt.lower()].extensions[0]
        if not cv2.haveImageWriter(f"x{extension}"):
            return f"this OpenCV writes no {fmt}"
    return None


def load(encoder: str, fmt: str, out: str, settings: dict) -> None:
    """Set up ``encoder``'s threads and have it encode a 16x16 image first, untimed, so the
    measured encode pays no first-call costs (imports, codecs loaded lazily, libvips'
    introspection) and the baseline holds them."""
    if encoder == "libvips":
        import pyvips

        pyvips.concurrency_set(settings["threads"])
        pyvips.cache_set_max(0)  # nothing of the warm-up's operations is reused
    elif encoder == "OpenCV":
        import cv2

        cv2.setNumThreads(settings["threads"])
    raw, target = (
        Path(out).with_name("warm-up.rgb"),
        Path(out).with_name(f"warm-up-{Path(out).name}"),
    )
    try:
        np.full((16, 16, 3), 128, np.uint8).tofile(raw)
        ENCODE[encoder](fmt, Spool(str(raw), 16, 16, 16), str(target), settings)
    finally:
        raw.unlink(missing_ok=True)
        target.unlink(missing_ok=True)


def status(field: str) -> float:
    """A memory figure of this process from /proc/self/status, in MB."""
    with open("/proc/self/status") as lines:
        for line in lines:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"no {field} in /proc/self/status")


class PrivateSampler(threading.Thread):
    """Samples this process's private (anonymous) resident memory; :attr:`peak` in MB."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = status("RssAnon")
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(SAMPLE_SECONDS):
            self.peak = max(self.peak, status("RssAnon"))

    def finish(self) -> float:
        self._done.set()
        self.join()
        return max(self.peak, status("RssAnon"))


def reset_peak() -> float:
    """Reset VmHWM to the current resident memory (Linux 4.0+) and return the baseline the
    peak is measured from: VmRSS, or where the reset is refused, the peak so far."""
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")
    except OSError:
        return status("VmHWM")
    return status("VmRSS")


def check(out: str, spool: Spool) -> dict:
    """The decoded file against the input: largest difference, PSNR, hash of its pixels."""
    from PIL import Image

    Image.MAX_IMAGE_PIXELS = None
    with Image.open(out) as image:
        decoded = np.asarray(image.convert("RGB"))
    if decoded.shape != (spool.height, spool.width, 3):
        return {"max_diff": None, "psnr": 0.0, "sha1": f"shape {decoded.shape}"}
    worst, squared = 0, 0.0
    for top in range(0, spool.height, BAND):
        bottom = min(top + BAND, spool.height)
        diff = decoded[top:bottom].astype(np.int16) - spool.rows(top, bottom)
        worst = max(worst, int(np.abs(diff).max()))
        squared += float(np.sum(diff.astype(np.float64) ** 2))
    psnr = 10 * np.log10(255**2 * decoded.size / squared) if squared else float("inf")
    digest = hashlib.sha1(decoded.tobytes()).hexdigest()
    return {"max_diff": worst, "psnr": psnr, "sha1": digest}


def child(encoder: str, fmt: str, spool: Spool, out: str, settings: dict) -> None:
    """One encode in this process; prints its measurements as JSON."""
    load(encoder, fmt, out, settings)
    base_rss = reset_peak()
    sampler = PrivateSampler()
    base_private = sampler.peak
    sampler.start()
    start = time.perf_counter()
    ENCODE[encoder](fmt, spool, out, settings)
    descriptor = os.open(out, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
    seconds = time.perf_counter() - start
    peak = status("VmHWM") - base_rss
    private = sampler.finish() - base_private
    result = {"seconds": seconds, "peak": peak, "private": max(0.0, private)}
    result["bytes"] = os.path.getsize(out)
    result.update(check(out, spool))
    print(json.dumps(result))


def run_child(encoder: str, fmt: str, spool: Spool, out: Path, settings: dict) -> dict:
    job = {"encoder": encoder, "fmt": fmt, "out": str(out), "settings": settings}
    job["spool"] = {k: getattr(spool, k) for k in ("path", "height", "width", "band")}
    command = [sys.executable, "-m", "benchmarks.encoders", "--child", json.dumps(job)]
    env = {**os.environ, "VIPS_CONCURRENCY": str(settings["threads"])}
    done = subprocess.run(command, capture_output=True, text=True, check=False, env=env)
    if done.returncode:  # shown after the table, so one failure does not hide the rest
        lines = (done.stderr or done.stdout).strip().splitlines() or [f"exit {done.returncode}"]
        return {"error": lines[-1]}
    return json.loads(done.stdout.strip().splitlines()[-1])


# -- the table and the verdicts -------------------------------------------------------------


def identical_cell(fmt: str, encoder: str, result: dict, ours: dict | None) -> str:
    if result["max_diff"] is None:
        return f"NO ({result['sha1']})"
    if fmt in LOSSLESS:
        return "yes" if result["max_diff"] == 0 else f"NO (max diff {result['max_diff']})"
    if encoder == "llenhance":
        return "-"
    if ours is None or "sha1" not in ours:
        return "?"
    return "= ours" if result["sha1"] == ours["sha1"] else "differs"


def equivalent(fmt: str, result: dict, ours: dict) -> bool:
    """Whether a library's output is as good as llenhance's."""
    if result["max_diff"] is None or fmt in LOSSLESS:
        return result["max_diff"] == 0
    return result["sha1"] == ours["sha1"] or result["psnr"] >= ours["psnr"] - PSNR_MARGIN


def worse(theirs: float, ours: float, margin: float) -> bool:
    """Whether ``theirs`` is clearly more than ``ours`` (by 10% and by ``margin``)."""
    return theirs > ours * TIME_MARGIN and theirs - ours > margin


def verdict(fmt: str, results: dict[str, dict]) -> str:
    """One line: where llenhance's encoder beats each library, or which library can replace it."""
    ours = results.get("llenhance")
    if ours is None or "error" in ours:
        return f"{fmt}: llenhance's encoder failed, nothing to compare"
    libraries = {name: r for name, r in results.items() if name != "llenhance" and "error" not in r}
    if not libraries:
        return f"{fmt}: no library could write it here: keep ours"
    as_good, beaten = [], []
    for name, theirs in libraries.items():
        ok = equivalent(fmt, theirs, ours)
        wins = []
        if worse(theirs["seconds"], ours["seconds"], SECONDS_MARGIN):
            wins.append(f"time by {theirs['seconds'] / ours['seconds']:.2f}x")
        if worse(theirs["private"], ours["private"], MB_MARGIN):
            wins.append(f"memory by {theirs['private'] - ours['private']:.0f} MB")
        if not wins and ok:
            as_good.append(name)
            continue
        notes = []
        if worse(ours["seconds"], theirs["seconds"], SECONDS_MARGIN):
            notes.append(f"{name} {ours['seconds'] / theirs['seconds']:.2f}x faster")
        if worse(ours["private"], theirs["private"], MB_MARGIN):
            notes.append(f"{name} {ours['private'] - theirs['private']:.0f} MB smaller")
        if not ok:
            notes.append("its output is not as good")
        if not wins:
            wins.append("output")
        beaten.append(
            f"{name} on {' and '.join(wins)}" + (f" ({', '.join(notes)})" if notes else "")
        )
    if as_good:
        best = min(as_good, key=lambda name: libraries[name]["seconds"])
        theirs = libraries[best]
        return (
            f"{fmt}: {best} is as good: replace ({theirs['seconds']:.2f} s, "
            f"{theirs['private']:.0f} MB against ours {ours['seconds']:.2f} s, "
            f"{ours['private']:.0f} MB)"
        )
    return f"{fmt}: ours beats " + "; ".join(beaten)


def main() -> None:
    if len(sys.argv) == 3 and sys.argv[1] == "--child":
        job = json.loads(sys.argv[2])
        spool = Spool(**job.pop("spool"))
        child(spool=spool, **job)
        return
    names = written_formats()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--megapixels", type=float, default=100.0)
    parser.add_argument(
        "--formats",
        default=",".join(spec.name.lower() for spec in FORMATS if spec.extensions),
        help=f"comma-separated, of {', '.join(names)}",
    )
    parser.add_argument("--threads", type=int, default=1, help="libvips and OpenCV threads")
    parser.add_argument("--workdir", type=Path, default=None, help="where the files go (temp)")
    args = parser.parse_args()
    formats = []
    for name in args.formats.lower().split(","):
        if name not in names:
            parser.error(f"unknown format {name!r}; written: {', '.join(names)}")
        if names[name] not in formats:
            formats.append(names[name])

    height, width = image_size(args.megapixels)
    console = Console(width=max(Console().width, 100))  # the table's width, even in a pipe
    with tempfile.TemporaryDirectory(dir=args.workdir) as tmp:
        raw = Path(tmp) / "input.rgb"
        made_of = write_spool(raw, height, width)
        spool = Spool(str(raw), height, width, tile_step())
        settings = tool_settings(args.threads)
        table = Table(
            title=f"Encoding {width}x{height} ({height * width / 1e6:.1f} MP) 8-bit RGB, "
            f"{made_of}; one run each, {args.threads} library thread(s)"
        )
        for column in ("format", "encoder", "seconds", "peak MB", "private MB", "file MB"):
            table.add_column(column, justify="left" if column in ("format", "encoder") else "right")
        table.add_column("identical")
        table.add_column("PSNR dB", justify="right")
        verdicts, failures = [], []
        for spec in formats:
            results: dict[str, dict] = {}
            for encoder in ENCODERS:
                reason = unavailable(encoder, spec.name)
                if reason is not None:
                    table.add_row(spec.label, encoder, "n/a", "", "", "", "", "")
                    failures.append(f"{spec.label} {encoder}: {reason}")
                    continue
                out = Path(tmp) / f"{encoder}{spec.extensions[0]}"
                result = run_child(encoder, spec.name, spool, out, settings)
                out.unlink(missing_ok=True)
                results[encoder] = result
                if "error" in result:
                    table.add_row(spec.label, encoder, "failed", "", "", "", "", "")
                    failures.append(f"{spec.label} {encoder}: {result['error']}")
                    continue
                table.add_row(
                    spec.label,
                    encoder,
                    f"{result['seconds']:.2f}",
                    f"{result['peak']:.0f}",
                    f"{result['private']:.0f}",
                    f"{result['bytes'] / 1e6:.2f}",
                    identical_cell(spec.name, encoder, result, results.get("llenhance")),
                    "-" if spec.name in LOSSLESS else f"{result['psnr']:.2f}",
                )
            table.add_section()
            verdicts.append(verdict(spec.label, results))
    console.print(table)
    for failure in failures:
        console.print(failure, markup=False)
    for line in verdicts:
        console.print(line, markup=False, soft_wrap=True)


if __name__ == "__main__":
    main()
