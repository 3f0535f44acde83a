"""Enhance arrays and files with a loaded model: the library behind ``llenhance enhance``."""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from llenhance.archs import ArchSpec, get_arch, resolve_model
from llenhance.catalog import DEFAULT_MODEL
from llenhance.devices import (
    fuse_batchnorm,
    place_model,
    release_freed_memory,
    resolve_device,
)
from llenhance.errors import UserError, failure_text
from llenhance.exposure import check_exposure
from llenhance.io.files import list_images
from llenhance.io.formats import FORMAT_OPTIONS, IMAGE_EXTENSIONS
from llenhance.io.guard import check_outputs, path_key
from llenhance.io.metadata import ImageInfo
from llenhance.io.read import image_size, spool_image
from llenhance.io.spool import SpooledImage
from llenhance.io.write import PNG_COMPRESSION, ImageWriter, check_output_path, write_image
from llenhance.pictures import side_by_side
from llenhance.pixels import RowSource, Shrinker, shrink
from llenhance.tiling import (
    DEFAULT_TILE,
    TileProgress,
    assemble,
    count_tiles,
    default_tile,
    enhance_bands,
    suggest_tile,
)
from llenhance.weights import WeightsInfo, load_model


@dataclass
class Enhancer:
    """A model ready to enhance whole images of any size (tiled, padded, on its device)."""

    model: nn.Module
    spec: ArchSpec
    info: WeightsInfo
    tile: int = DEFAULT_TILE
    overlap: int | None = None
    amp: bool = False
    batch_tiles: int = 1
    exposure: float = 0.0
    """Stops added to the model's automatic exposure (see :mod:`llenhance.exposure`)."""

    def __call__(
        self,
        image: np.ndarray,
        progress: TileProgress | None = None,
        out_dtype: type[np.generic] = np.float32,
    ) -> np.ndarray:
        """Enhance an HxWx3 image (float32 in [0, 1], uint8 or uint16)."""
        return assemble(self.bands(image, progress, out_dtype), image.shape)

    def bands(
        self,
        image: RowSource,
        progress: TileProgress | None = None,
        out_dtype: type[np.generic] = np.float32,
    ) -> Iterator[tuple[int, np.ndarray]]:
        """Enhance ``image`` (an array or a :class:`~llenhance.io.spool.SpooledImage`), yielding
        finished bands of output rows, ``(top, rows)``, top to bottom."""
        return enhance_bands(
            self.model,
            image,
            self.spec,
            tile=self.tile,
            overlap=self.overlap,
            batch_tiles=self.batch_tiles,
            amp=self.amp,
            out_dtype=out_dtype,
            progress=progress,
            exposure=self.exposure,
        )

    def tiles_for(self, height: int, width: int) -> int:
        return count_tiles(height, width, self.spec, self.tile, self.overlap)


def load_enhancer(
    model: str | None = None,
    weights: str | Path | None = None,
    *,
    device: str = "auto",
    tile: int | str | None = None,
    overlap: int | None = None,
    amp: bool = True,
    batch_tiles: int | None = None,
    offline: bool | None = None,
    exposure: float = 0.0,
) -> Enhancer:
    """Load ``weights`` (a path, shipped name or hf:// reference), or the shipped weights of
    ``model``; AMP and tile batching apply on CUDA only. ``tile=None`` takes the
    architecture's default tile; ``tile="auto"`` picks the largest tile that fits in free GPU
    memory (the default tile on CPU). ``exposure``: stops brighter (or darker, negative) than
    the model's automatic exposure."""
    try:
        exposure = check_exposure(exposure)
    except ValueError as exc:
        raise UserError(f"--exposure: {exc}") from None
    arch = None
    if model is not None and "/" not in model:  # an unknown name fails here, with a suggestion
        arch = resolve_model(model)[0].name
    if tile is not None and not (isinstance(tile, str) and tile.strip().lower() == "auto"):
        check_overlap(overlap, resolve_tile(tile, torch.device("cpu"), None))  # before loading
    torch_device = resolve_device(device)
    net, info = load_model(weights or model or DEFAULT_MODEL, device=torch_device, offline=offline)
    if arch is not None and weights is not None and info.arch != arch:
        raise UserError(f"{weights}: weights are for '{info.arch}', not --model {model}")
    net = place_model(fuse_batchnorm(net), torch_device)
    on_cuda = torch_device.type == "cuda"
    spec = get_arch(info.arch).for_config(info.config)
    tile_px = resolve_tile(tile, torch_device, spec)
    check_overlap(overlap, tile_px)
    return Enhancer(
        model=net,
        spec=spec,
        info=info,
        tile=tile_px,
        overlap=overlap,
        amp=amp and on_cuda,
        batch_tiles=batch_tiles or (4 if on_cuda else 1),
        exposure=exposure,
    )


def resolve_tile(tile: int | str | None, device: torch.device, spec: ArchSpec) -> int:
    """None: the architecture's default tile; ``auto``: on CUDA the largest tile whose
    activations fit in half the free memory."""
    if tile is None:
        return default_tile(spec)
    if isinstance(tile, str) and tile.strip().lower() == "auto":
        if device.type != "cuda":
            return default_tile(spec)
        free, _ = torch.cuda.mem_get_info(device)
        return suggest_tile(free // 2, spec)
    try:
        value = int(tile)
    except (TypeError, ValueError):
        raise UserError(f"--tile {tile}: expected a number of pixels, 0 or auto") from None
    if value < 0:
        raise UserError(f"--tile {tile}: expected a positive number of pixels, 0 or auto")
    return value


def check_overlap(overlap: int | None, tile: int) -> None:
    """``--tile-overlap``: not negative, and less than a tile (0: whole image, any overlap)."""
    if overlap is None:
        return
    if isinstance(overlap, bool) or not isinstance(overlap, int) or overlap < 0:
        raise UserError(f"--tile-overlap {overlap}: expected 0 or a positive number of pixels")
    if tile > 0 and overlap >= tile:
        raise UserError(f"--tile-overlap {overlap}: must be less than the tile ({tile} pixels)")


def enhance_image(image: np.ndarray, model: str | None = None, **options) -> np.ndarray:
    """One-call enhancement of an HxWx3 float32 array in [0, 1] (loads the model each call:
    use :func:`load_enhancer` for many images)."""
    return load_enhancer(model, **options)(image)


@dataclass
class Job:
    source: Path
    target: Path
    compare: Path | None = None
    """Where ``--compare`` puts the side-by-side picture (None: none is written)."""

    def outputs(self) -> list[tuple[Path, str]]:
        """Every file this job writes, with what writes it (for :func:`check_outputs`)."""
        found = [(self.target, str(self.source))]
        if self.compare is not None:
            found.append((self.compare, f"--compare of {self.source}"))
        return found


@dataclass
class BatchReport:
    done: list[Job] = field(default_factory=list)
    skipped: list[Job] = field(default_factory=list)
    failed: list[tuple[Path, str]] = field(default_factory=list)
    seconds: float = 0.0
    megapixels: float = 0.0


def plan_jobs(
    inputs: Sequence[str | Path],
    output: str | Path | None,
    *,
    fmt: str | None = None,
    suffix: str = "_enhanced",
    compare: bool = False,
) -> list[Job]:
    """Map inputs to outputs: an output with an extension and no trailing slash is a file (one
    input only); otherwise it is a directory. Without ``-o``, results go beside the inputs
    with ``suffix`` added to the name; files a folder or pattern brings in that are this plan's
    own outputs (an earlier run's ``NAME_enhanced.EXT`` beside ``NAME.EXT``) are not inputs, so
    such a batch resumes.

    Everything is checked here, before any work: every output, ``--compare`` pictures included,
    is no input and no two share a name (:func:`~llenhance.io.guard.check_outputs`), and missing
    folders (parents too) must be creatable; :func:`enhance_files` makes them as it writes.
    """
    if fmt is not None and fmt.lower() not in FORMAT_OPTIONS:
        expected = ", ".join(sorted(FORMAT_OPTIONS))
        raise UserError(f"--format {fmt}: expected one of {expected}")
    sources = list_images(inputs)
    ext = FORMAT_OPTIONS[fmt.lower()] if fmt else None
    if output is not None:
        out = Path(output)
        trailing_slash = str(output).endswith(("/", os.sep))
        is_file = out.suffix != "" and not out.is_dir() and not trailing_slash
        if is_file:
            if out.suffix.lower() not in IMAGE_EXTENSIONS:
                raise UserError(
                    f"-o {out}: unknown image extension {out.suffix} "
                    f"(use one of {', '.join(IMAGE_EXTENSIONS)}, or a directory)"
                )
            if len(sources) > 1:
                raise UserError(
                    f"-o {out}: {len(sources)} inputs need an output directory, not a file"
                )
            _check_creatable(out.parent, out)

            def target_of(s: Path) -> Path:
                return out
        else:
            if out.exists() and not out.is_dir():
                raise UserError(f"-o {out}: exists and is not a directory")
            _check_creatable(out, out)

            def target_of(s: Path) -> Path:
                return out / f"{s.stem}{ext or s.suffix}"
    else:

        def target_of(s: Path) -> Path:
            return s.with_name(f"{s.stem}{suffix}{ext or s.suffix}")

    def job_of(s: Path) -> Job:
        target = target_of(s)
        return Job(s, target, compare_path(target) if compare else None)

    jobs = [job_of(s) for s in sources]
    if output is None:
        named = {path_key(Path(os.path.expanduser(os.fspath(i)))) for i in inputs}
        own = {path_key(path) for job in jobs for path, _ in job.outputs()}
        jobs = [j for j in jobs if path_key(j.source) in named or path_key(j.source) not in own]
    check_outputs([o for job in jobs for o in job.outputs()], [j.source for j in jobs], force=True)
    return jobs


def _check_creatable(folder: Path, option: Path) -> None:
    """A folder that exists, or whose nearest existing ancestor is a writable directory."""
    ancestor = folder
    while not ancestor.exists() and ancestor != ancestor.parent:
        ancestor = ancestor.parent
    if not ancestor.is_dir():
        raise UserError(f"-o {option}: {ancestor} is not a directory")
    if ancestor != folder and not os.access(ancestor, os.W_OK | os.X_OK):
        raise UserError(f"-o {option}: cannot create {folder} ({ancestor} is not writable)")


class BatchCallbacks:
    """Progress hooks for :func:`enhance_files`; the CLI draws rich bars with them."""

    def image_start(self, job: Job, tiles: int) -> None: ...
    def tile_done(self, done: int, total: int, megapixels: float) -> None: ...
    def image_end(self, job: Job, status: str, megapixels: float) -> None: ...


OVERLAP_MAX_MEGAPIXELS = 40
"""Photos up to this size are decoded while the previous one computes, and encoded while the
next one does; larger ones are decoded, enhanced and encoded while nothing else is, so the
decoder's buffers or a WebP result's YUV picture never add to the model's working memory."""

COMPARE_SIDE = 2048
"""Largest side of a ``--compare`` picture."""


def enhance_files(
    jobs: Iterable[Job],
    enhancer: Enhancer,
    *,
    force: bool = False,
    quality: int = 95,
    subsampling: str | None = None,
    png_compression: int = PNG_COMPRESSION,
    callbacks: BatchCallbacks | None = None,
    compare: bool = False,
) -> BatchReport:
    """Enhance each job's source into its target, going on past failures.

    A photo is decoded once into an unlinked temporary file beside its output
    (:func:`~llenhance.io.read.spool_image`), enhanced a band of rows at a time, and its rows
    are encoded as they come (PNG, TIFF, JPEG) or gathered on disk and encoded at the end
    (WebP from one YUV picture, BMP a band at a time). Memory so holds the decoder's buffers (a
    band of rows for the formats libvips reads; the whole photo for BMP and other formats only
    Pillow reads), then tiles and one image-wide band of at most
    :data:`~llenhance.tiling.BAND_MEGAPIXELS`, and, for WebP, the result's YUV picture (1.5
    bytes a pixel) while it is encoded; it does not grow with the number of images. Up to
    OVERLAP_MAX_MEGAPIXELS, the next photo is decoded and the previous one encoded on
    background threads while the model computes.
    An existing target is skipped unless ``force``; outputs are written to a temporary name and
    renamed, so an interrupted batch resumes cleanly. Before the first write, every file the
    batch will write is checked (:func:`~llenhance.io.guard.check_outputs`): none is an input,
    none shares a name with another and, unless ``force``, none exists (a ``--compare``
    picture included). Every file is then created exclusively: without ``force`` nothing is
    ever replaced, even by a run writing the same names at the same time.

    A failure of one image, whatever its cause, is recorded in the report with the image and
    the batch goes on; only KeyboardInterrupt and SystemExit end it.
    """
    callbacks = callbacks or BatchCallbacks()
    report = BatchReport()
    started = time.perf_counter()
    jobs = list(jobs)
    if compare:
        jobs = [
            j if j.compare is not None else Job(j.source, j.target, compare_path(j.target))
            for j in jobs
        ]
    todo: list[Job] = []
    for job in jobs:
        if job.target.exists() and not force:
            report.skipped.append(job)
            callbacks.image_end(job, "skipped", 0.0)
        else:
            todo.append(job)
    check_outputs([o for job in todo for o in job.outputs()], [j.source for j in jobs], force=force)
    options = {
        "quality": quality,
        "subsampling": subsampling,
        "png_compression": png_compression,
        "overwrite": force,
    }
    with ThreadPoolExecutor(max_workers=1) as reader, ThreadPoolExecutor(max_workers=1) as writer:

        def spool_job(job: Job, alone: bool) -> tuple[SpooledImage, ImageInfo]:
            job.target.parent.mkdir(parents=True, exist_ok=True)  # -o out/a/b/ (checked)
            # before the decode, and before a spool beside it
            check_output_path(job.target, overwrite=force)
            spooled, info = spool_image(job.source, job.target.parent)
            # The decoder's copy of the photo, freed in this thread's arena, which the model
            # never reuses. Only while nothing computes (the first photo, or one after a large
            # one): a trim would also return the activations glibc keeps for the next tile.
            if alone:
                release_freed_memory()
            return spooled, info

        def read(job: Job, alone: bool) -> Future:
            return reader.submit(spool_job, job, alone)

        writes: list[tuple[Job, float, Future]] = []
        upcoming: Future | None = None
        for index, job in enumerate(todo):
            if upcoming is None:  # not read ahead (a large photo): decoded once all else is done
                _collect(writes, report, callbacks, block=True)
                upcoming = read(job, alone=True)
            future, upcoming = upcoming, None
            following = todo[index + 1] if index + 1 < len(todo) else None
            if following is not None and _small(following.source):
                upcoming = read(following, alone=False)
            try:
                source, info = future.result()
            except Exception as exc:  # noqa: BLE001 - one image's failure never ends the batch
                _failed(report, callbacks, job, exc)
                continue
            with source:
                mp = source.shape[0] * source.shape[1] / 1e6
                try:
                    finish = _enhance_one(source, info, job, enhancer, writer, callbacks, options)
                except Exception as exc:  # noqa: BLE001
                    _failed(report, callbacks, job, exc)
                    continue
            _collect(writes, report, callbacks, block=True)  # at most one image being encoded
            writes.append((job, mp, writer.submit(finish)))
            if _large(source):  # encoded alone too: nothing computes beside its whole result
                _collect(writes, report, callbacks, block=True)
        _collect(writes, report, callbacks, block=True)
    report.seconds = time.perf_counter() - started
    return report


def _large(image: SpooledImage) -> bool:
    return image.shape[0] * image.shape[1] / 1e6 > OVERLAP_MAX_MEGAPIXELS


def _small(path: Path) -> bool:
    size = image_size(path)
    return size is not None and size[0] * size[1] / 1e6 <= OVERLAP_MAX_MEGAPIXELS


def _enhance_one(
    source: SpooledImage,
    info: ImageInfo,
    job: Job,
    enhancer: Enhancer,
    pool: ThreadPoolExecutor,
    callbacks: BatchCallbacks,
    options: dict,
) -> Callable[[], None]:
    """Enhance ``source`` into ``job.target``, handing each finished band to ``pool`` to encode
    while the next one computes; return the call that finishes the file (and the
    ``--compare`` picture)."""
    height, width = source.shape[:2]
    mp = height * width / 1e6
    compare = job.compare is not None
    factor = max(1, min(height, width) // (COMPARE_SIDE // 2))
    before = shrink(source, factor) if compare else None
    after = Shrinker(factor) if compare else None
    pending: Future | None = None
    # Nothing between the temporary file's creation and the try: an interrupt there (SIGTERM
    # arrives as one) would leave the file behind.
    output = ImageWriter(job.target, height, width, info, **options)
    try:
        callbacks.image_start(job, enhancer.tiles_for(height, width))
        for _, rows in enhancer.bands(
            source,
            progress=lambda d, t: callbacks.tile_done(d, t, mp),
            out_dtype=np.uint16 if info.bit_depth == 16 else np.uint8,
        ):
            if pending is not None:
                pending.result()
            pending = pool.submit(output.write, rows)
            if after is not None:
                after.add(rows)
        if pending is not None:
            pending.result()
    except BaseException:
        if pending is not None:
            with contextlib.suppress(Exception):
                pending.result()
        output.abort()
        raise

    def finish() -> None:
        large = _large(source)
        if large:  # the tiles' activations, before a WebP result's YUV picture is made
            release_freed_memory()
        try:
            output.close()
        finally:
            if large:
                release_freed_memory()  # that result, once encoded
        if compare:
            side = side_by_side(before, after.result(), max_side=COMPARE_SIDE)
            write_image(job.compare, side, **options)

    return finish


def compare_path(target: Path) -> Path:
    """Where ``--compare`` puts the side-by-side picture of an output."""
    return target.with_name(f"{target.stem}_compare{target.suffix}")


def _collect(writes: list, report: BatchReport, callbacks: BatchCallbacks, block: bool) -> None:
    while writes and (block or writes[0][2].done()):
        job, mp, future = writes.pop(0)
        try:
            future.result()
        except Exception as exc:  # noqa: BLE001 - one image's failure never ends the batch
            _failed(report, callbacks, job, exc)
            continue
        report.done.append(job)
        report.megapixels += mp
        callbacks.image_end(job, "done", mp)


def _failed(report: BatchReport, callbacks: BatchCallbacks, job: Job, exc: BaseException) -> None:
    report.failed.append((job.source, failure_text(job.source, exc)))
    callbacks.image_end(job, "failed", 0.0)
