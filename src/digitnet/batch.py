"""Reading many image files: preprocessing in a process pool, batched model calls, results in input order."""

from __future__ import annotations

import collections
import os
from collections.abc import Iterator, Sequence

from .errors import DigitnetError
from .presets import POOL_BATCH_FILES, POOL_MIN_FILES, POOL_TASK_FILES
from .results import Reading


def read_files(predictor, sources: Sequence, *, names: Sequence[str] | None = None, jobs: int = 1,
               single: bool = False, top_k: int | None = None, min_confidence: float | None = None,
               min_digit_score: float | None = None) -> Iterator[Reading]:
    """Yield the :class:`~digitnet.results.Reading` of each source (a path or bytes), in input order, as
    soon as it and those before it are ready; ``names`` are their ``file`` names (default: the paths).
    A file that cannot be read yields its own error reading.

    With ``jobs`` > 1 and more than :data:`~digitnet.presets.POOL_MIN_FILES` sources, ``jobs`` worker
    processes decode and segment while this one runs the model on up to
    :data:`~digitnet.presets.POOL_BATCH_FILES` files' marks per call; otherwise each file is read here.
    """
    if names is None:  # a path names itself; bytes have no name
        names = [str(s) if isinstance(s, str | os.PathLike) else None for s in sources]
    options = dict(top_k=top_k, min_confidence=min_confidence, min_digit_score=min_digit_score)
    predictor.check_options(**options)  # bad options fail now, not once per file
    if jobs <= 1 or len(sources) <= POOL_MIN_FILES:
        for name, source in zip(names, sources):
            try:
                yield predictor.predict_image(source, single=single, file=name, **options)
            except (DigitnetError, OSError) as e:  # this file only: the others are still read
                yield Reading.failed(name, str(e))
        return
    yield from _read_in_pool(predictor, sources, names, jobs, single, options)


def _read_in_pool(predictor, sources, names, jobs: int, single: bool, options: dict) -> Iterator[Reading]:
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    # forkserver: the workers start from a clean interpreter, not a fork of one running the model's threads.
    context = multiprocessing.get_context("forkserver")
    context.set_forkserver_preload(["digitnet.preprocessing"])
    # A task is a few consecutive files (fewer round trips to the workers); files in flight are bounded.
    per_task = max(1, min(POOL_TASK_FILES, len(sources) // (4 * jobs)))
    window = 2 * jobs * POOL_BATCH_FILES // per_task  # tasks in flight: every worker busy, memory bounded
    todo = iter(range(0, len(sources), per_task))
    pending: collections.deque = collections.deque()  # (names, future), in input order
    with ProcessPoolExecutor(jobs, mp_context=context) as pool:
        def fill() -> None:
            for i in todo:
                pending.append((names[i:i + per_task], pool.submit(_segment, sources[i:i + per_task], single)))
                if len(pending) >= window:
                    return

        fill()
        while pending:
            group: list = []
            while pending and len(group) < POOL_BATCH_FILES and (not group or pending[0][1].done()):
                task_names, future = pending.popleft()  # the next task in order (waiting for it), then what is ready
                group += zip(task_names, future.result())
            fill()
            try:
                yield from predictor.read_segmentations(group, **options)
            except DigitnetError as e:  # the model failed on these files: each says so, the rest are still read
                yield from (Reading.failed(name, str(e)) for name, _ in group)


def _segment(sources: Sequence, single: bool) -> list:
    """In a worker: each file's segmentation, or its error message."""
    from .preprocessing import segment

    out = []
    for source in sources:
        try:
            out.append(segment(source, single=single))
        except (DigitnetError, OSError) as e:
            out.append(str(e))
    return out
