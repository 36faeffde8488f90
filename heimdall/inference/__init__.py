"""Model verification, the ONNX session and the ``Localizer`` (pure: no Redis, no Celery)."""

from heimdall.inference.localizer import Localizer, PreparedJob
from heimdall.inference.model import ModelFiles, load_model_files
from heimdall.inference.session import create_session, session_options

__all__ = [
    "Localizer",
    "ModelFiles",
    "PreparedJob",
    "create_session",
    "load_model_files",
    "session_options",
]
