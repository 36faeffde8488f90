"""A job's books in Redis, apart from the broker's queues: who computes it (job claims), its IQ
blobs, its publication (Celery result, stream, pub/sub, batch count) and the result cache.

Used by the tasks (children) and by the broker's main-process hooks (refusals, lost children).
"""

from heimdall.store.blobs import BlobPayloads
from heimdall.store.books import JobBooks, main_process_books, process_books, store_client
from heimdall.store.cache import ResultCache
from heimdall.store.claims import JobClaim, JobClaims
from heimdall.store.publication import Publication, tagged

__all__ = [
    "BlobPayloads",
    "JobBooks",
    "JobClaim",
    "JobClaims",
    "Publication",
    "ResultCache",
    "main_process_books",
    "process_books",
    "store_client",
    "tagged",
]
