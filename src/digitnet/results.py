"""What every reader returns: a :class:`Reading` per image, :class:`DigitPrediction` and :class:`Rejected` per mark.

The CLI's ``--json``, the HTTP API and the Python API all serialize through ``to_dict()``, so the JSON
shape is defined here once (the server's response models document it; see ``server/schemas.py``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

ROUND = 6  # decimals of the probabilities in JSON: far below any meaningful difference


@dataclass
class DigitPrediction:
    """One digit read from an image."""

    digit: int
    probability: float  # of ``digit``
    probabilities: list[float]  # (10,) one per digit 0-9
    box: list[int]  # x, y, w, h in the source image's pixels
    low_confidence: bool  # probability under the calibrated threshold
    digit_score: float = 1.0  # the model's belief that the mark is a digit at all, in [0, 1]
    top_k: list[list] | None = None  # [[digit, probability], ...] most likely first, when asked
    normalized: str | None = None  # base64 PNG of the 28x28 image the model saw, when asked
    explanation: dict | None = None  # Predictor.explain's dict (all classes), when asked

    @classmethod
    def from_probabilities(cls, p: np.ndarray, box, threshold: float, top_k: int | None = None,
                           normalized: np.ndarray | None = None, digit_score: float = 1.0) -> DigitPrediction:
        """Build one entry from (10,) probabilities."""
        label = int(p.argmax())
        return cls(
            digit=label, probability=round(float(p[label]), ROUND),
            probabilities=[round(float(v), ROUND) for v in p], box=[int(v) for v in box],
            low_confidence=bool(p[label] < threshold), digit_score=round(float(digit_score), ROUND),
            top_k=[[int(i), round(float(p[i]), ROUND)] for i in np.argsort(-p)[:top_k]] if top_k else None,
            normalized=png_base64(normalized) if normalized is not None else None,
        )

    def to_dict(self, layer_values: bool = False) -> dict:
        d = {"digit": self.digit, "probability": self.probability, "probabilities": self.probabilities,
             "box": self.box, "low_confidence": self.low_confidence, "digit_score": self.digit_score}
        if self.top_k is not None:  # optional fields are absent, not null, when not asked for
            d["top_k"] = self.top_k
        if self.normalized is not None:
            d["normalized"] = self.normalized
        if self.explanation is not None:
            d["explanation"] = explanation_dict(self.explanation, layer_values)
        return d


def explanation_dict(e: dict, layer_values: bool = False) -> dict:
    """``Predictor.explain``'s dict as JSON: saliency maps as nested lists, each layer's activations as
    one base64 PNG grid (``png``), or with ``layer_values`` as the numbers themselves (``values``)."""
    from .explain import feature_grid

    def rounded(a):
        return np.round(np.asarray(a, np.float64), ROUND).tolist()

    d = {"target": e["target"], "method": e["method"], "saliency": rounded(e["saliency"])}
    if "saliency_by_class" in e:
        d["saliency_by_class"] = rounded(e["saliency_by_class"])
    d["layers"] = [{"name": a["name"], "shape": a["shape"], **(
                        {"values": rounded(a["values"])} if layer_values
                        else {"png": png_base64(feature_grid(a["values"]))})} for a in e["activations"]]
    return d


NOT_A_DIGIT = "not a digit"


@dataclass
class Rejected:
    """A mark the segmentation found that the model does not believe is a digit."""

    box: list[int]  # x, y, w, h in the source image's pixels
    digit_score: float  # under the threshold in force
    reason: str = NOT_A_DIGIT
    normalized: str | None = None  # base64 PNG of the 28x28 image the model saw, when asked (to correct it)

    @classmethod
    def of(cls, box, digit_score: float, normalized: np.ndarray | None = None) -> Rejected:
        return cls([int(v) for v in box], round(float(digit_score), ROUND),
                   normalized=png_base64(normalized) if normalized is not None else None)

    def to_dict(self) -> dict:
        d = {"box": self.box, "digit_score": self.digit_score, "reason": self.reason}
        if self.normalized is not None:
            d["normalized"] = self.normalized
        return d


@dataclass
class Reading:
    """What was read in one image. "No digit" is an answer (``digits`` None, ``reason`` says why); an
    input that could not be read has ``error`` set instead."""

    file: str | None = None
    digits: str | None = None  # the digits read, one line of text per line of digits
    reason: str | None = None  # why there are no digits, in words
    predictions: list[DigitPrediction] = field(default_factory=list)
    error: str | None = None
    rejected: list[Rejected] = field(default_factory=list)  # marks that are not digits: always present, maybe []

    @classmethod
    def failed(cls, file: str | None, message: str) -> Reading:
        """The result for an input that could not be read."""
        return cls(file=file, error=message)

    def to_dict(self, layer_values: bool = False) -> dict:
        """The JSON object; ``layer_values`` gives explanations' activations as numbers, not PNG grids."""
        return {"file": self.file, "digits": self.digits, "reason": self.reason,
                "predictions": [p.to_dict(layer_values) for p in self.predictions],
                "rejected": [r.to_dict() for r in self.rejected], "error": self.error}


def png_base64(image: np.ndarray) -> str:
    """A uint8 grey image, (28, 28) or any (h, w), as a base64 PNG string."""
    import base64
    import io

    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return base64.b64encode(buf.getvalue()).decode("ascii")
