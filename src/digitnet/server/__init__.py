"""The HTTP API and drawing page: ``create_app(predictor)`` builds a FastAPI app around a loaded model."""

from ..presets import Limits
from .app import create_app

__all__ = ["Limits", "create_app"]
