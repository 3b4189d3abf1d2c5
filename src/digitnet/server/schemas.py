"""Response models of the HTTP API. They document the JSON in ``/openapi.json`` and ``/docs``.

Responses are serialized with the result types' own ``to_dict()`` (``digitnet.results``), not
filtered through these models: optional fields stay absent rather than ``null``, and a field a later
version adds is never dropped silently. A test validates real responses against these schemas.
"""

from __future__ import annotations

from pydantic import BaseModel, Field

from ..presets import NUM_CLASSES


class LayerOut(BaseModel):
    """One layer's activations for the digit."""

    name: str = Field(description="block1, block2, ... for convolution blocks, then features, dense1, ..., logits")
    shape: list[int] = Field(description="the activations' shape: (h, w, channels) or (units,)")
    png: str = Field(description="base64 PNG: the feature maps tiled in a grid (a vector as a grid of cells), "
                                 "0 black, the layer's highest value white")


class ExplanationOut(BaseModel):
    """Why the model read the digit: only from `/api/explain`."""

    target: int = Field(ge=0, le=9, description="the class `saliency` explains: the digit read")
    method: str = Field(description="'integrated_gradients' (of the class logit, from a black image)")
    saliency: list[list[float]] = Field(description="28x28, non-negative, summing to 1: the pixels that raised "
                                                    "the target's logit")
    saliency_by_class: list[list[list[float]]] = Field(description="10x28x28: the same map for each digit 0-9")
    layers: list[LayerOut] = Field(description="each convolution block in order, then the dense head")


class DigitPredictionOut(BaseModel):
    """One digit read from the image."""

    digit: int = Field(ge=0, le=9, description="the most likely digit")
    probability: float = Field(ge=0, le=1, description="the probability of `digit`")
    probabilities: list[float] = Field(min_length=NUM_CLASSES, max_length=NUM_CLASSES,
                                      description="one per digit 0-9")
    box: list[int] = Field(min_length=4, max_length=4, description="x, y, w, h in the image's pixels")
    low_confidence: bool = Field(description="`probability` is under the model's calibrated threshold")
    digit_score: float = Field(ge=0, le=1, description="the model's belief that the mark is a digit at all")
    top_k: list[list[float]] | None = Field(
        None, description="[[digit, probability], ...], most likely first; only with `top_k`")
    normalized: str | None = Field(None, description="base64 PNG of the 28x28 image the model saw")
    explanation: ExplanationOut | None = Field(None, description="only from `/api/explain`")


class RejectedOut(BaseModel):
    """A mark that was found but is not a digit: its digit score is under the threshold."""

    box: list[int] = Field(min_length=4, max_length=4, description="x, y, w, h in the image's pixels")
    digit_score: float = Field(ge=0, le=1, description="the model's belief that the mark is a digit at all")
    reason: str = Field(description="'not a digit'")
    normalized: str | None = Field(None, description="base64 PNG of the 28x28 image the model saw (so that a "
                                                     "wrong rejection can be corrected with /api/samples)")


class ReadingOut(BaseModel):
    """What was read in one image. "No digit" is an answer: `digits` is null and `reason` says why."""

    file: str | None = Field(description="the uploaded file's name, if any")
    digits: str | None = Field(description="the digits read, one line of text per line of digits")
    reason: str | None = Field(description="why there are no digits, e.g. 'blank image' or 'not a digit'")
    predictions: list[DigitPredictionOut] = Field(description="one entry per digit, in reading order")
    rejected: list[RejectedOut] = Field(description="marks that are not digits; [] when none (errors too)")
    error: str | None = Field(description="in a batch, why this one file could not be read")


class ModelOut(BaseModel):
    """The loaded model."""

    name: str
    version: str | None = Field(description="which model answers: a personal version's number, 'default' (the "
                                            "trained default), 'shipped', or a file; also in the "
                                            "X-Digitnet-Model-Version header of every reading")
    file: str | None
    accuracy: float | None = Field(description="MNIST test accuracy recorded with the model")
    trained_at: str | None
    parameters: int
    classes: list[str]
    min_confidence: float = Field(description="the calibrated low-confidence threshold")
    min_digit_score: float = Field(description="the calibrated digit-score threshold: a mark under it is "
                                               "'not a digit' (0: nothing is rejected)")
    backend: str = Field(description="the inference runtime")


class SampleOut(BaseModel):
    """A stored sample."""

    id: str = Field(description="the sha256 of the 28x28 image's 784 raw bytes")
    label: int = Field(ge=0, le=9)


class SamplesOut(BaseModel):
    """The sample store."""

    counts: dict[str, int] = Field(description="samples per digit, '0' to '9'")
    total: int
    samples: list[SampleOut]


class PersonalizeOut(BaseModel):
    """The personalization job: the last one, or the one running."""

    state: str = Field(description="idle, starting, running, done or failed")
    progress: float = Field(ge=0, le=1)
    before: dict | None = Field(description="accuracies of the base: `user` (your held-out samples), "
                                            "`validation` and `test` (MNIST)")
    after: dict | None = Field(description="the same, for the new version")
    version: int | None = Field(description="the version published")
    error: str | None = Field(description="why it failed")
    message: str | None = Field(None, description="what it is doing")


class ErrorOut(BaseModel):
    """Every error: a message for people and, for some, a code for programs."""

    error: str = Field(description="what went wrong and what was expected")
    code: str | None = Field(None, description="a machine-readable code, when the error has one")


class HealthOut(BaseModel):
    status: str = Field(description="'ok' while the server is up")
    pid: int = Field(description="the process that answered (one of several with `serve --processes`)")
    model_version: str | None = Field(description="the model version that process serves (see `/api/model`)")


def errors(*statuses: int) -> dict:
    """The ``responses=`` entry documenting error statuses with :class:`ErrorOut`."""
    return {s: {"model": ErrorOut} for s in statuses}


# Request bodies, for the documentation (the routes parse the request themselves, by content type).
PREDICT_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {
        "type": "object", "required": ["file"],
        "properties": {"file": {"type": "string", "format": "binary", "description": "an image file, any format"}}}},
    "application/json": {"schema": {
        "type": "object",
        "properties": {
            "pixels": {"description": "28x28 nested lists or 784 numbers 0-255, white ink on black (MNIST form)",
                       "type": "array", "items": {}},
            "image": {"type": "string", "description": "a base64 image file, or a data: URL"}}}},
}}}
BATCH_BODY = {"requestBody": {"required": True, "content": {"multipart/form-data": {"schema": {
    "type": "object", "required": ["file"],
    "properties": {"file": {"type": "array", "items": {"type": "string", "format": "binary"},
                            "description": "one field 'file' per image"}}}}}}}
