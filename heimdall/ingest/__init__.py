"""Real recordings → jobs (DESIGN §10): SigMF, KiwiSDR IQ WAV, and a drop folder.

Readers never import Celery or Redis: the drop folder is handed a ``submit`` function.
"""

from heimdall.ingest.assemble import Assembled, assemble
from heimdall.ingest.recording import IngestError, Recording, RecordingSet

__all__ = ["Assembled", "IngestError", "Recording", "RecordingSet", "assemble"]
