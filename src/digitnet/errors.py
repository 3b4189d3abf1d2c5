"""Every error digitnet raises on purpose, under one base class: :class:`DigitnetError`.

Catch ``DigitnetError`` to tell bad input, missing files and damaged data from bugs. Each class keeps
a built-in second parent where callers already relied on one (``except ValueError`` still catches a
bad image), as scikit-learn's ``NotFittedError(ValueError, AttributeError)`` does.
"""

from __future__ import annotations


class DigitnetError(Exception):
    """Base class of every error digitnet raises on purpose. Anything else is a bug."""


class ConfigError(DigitnetError, ValueError):
    """An option has a value digitnet does not offer (an unknown preset, backend, format...)."""


class InputError(DigitnetError, ValueError):
    """Arrays passed to the library have the wrong shape, dtype or range."""


class ImageError(InputError):
    """The input is not a usable image (corrupt, empty, unsupported, too large, NaN...)."""


class ImageTooLargeError(ImageError):
    """The image exceeds the byte or pixel cap."""


class DeadlineExceeded(DigitnetError, TimeoutError):
    """Work given a deadline (a server request) ran past it and stopped between two stages."""


class ModelOutputError(DigitnetError, RuntimeError):
    """The model returned non-finite numbers: its file or its cached conversion is damaged."""


class TrainingError(DigitnetError, RuntimeError):
    """Training cannot go on: the loss became NaN or infinite."""


class DataError(DigitnetError, ValueError):
    """A data file is malformed: a bad IDX header, a broken .npz, an unreadable image folder."""


class ChecksumError(DataError):
    """A file's sha256 is not the pinned one."""


class DataNotFoundError(DigitnetError, FileNotFoundError):
    """A folder named as a data set holds no data set."""


class DataUnavailableError(DigitnetError, RuntimeError):
    """No source could provide verified data. The message lists every source tried and why it failed."""


class ModelNotFoundError(DigitnetError, FileNotFoundError):
    """``--model`` (or a path argument) names no model file or model directory."""


class ModelLoadError(DigitnetError, ValueError):
    """A model file exists but cannot be loaded: damaged, truncated, or not a Keras archive."""


class CheckpointError(DigitnetError, RuntimeError):
    """A checkpoint is missing, corrupt or from another version."""


class SampleCapError(DigitnetError, RuntimeError):
    """The sample store is full: a label holds its cap of samples, or the store its total."""


class BusyError(DigitnetError, RuntimeError):
    """Another personalization job holds the lock: one at a time, across processes."""
