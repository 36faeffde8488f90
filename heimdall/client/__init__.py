"""Producer (``submit``) and consumer (``subscribe``, ``read_stream``) clients of the fleet."""

from heimdall.client.consumer import ResultFeed, ResultListener
from heimdall.client.producer import BatchHandle, JobHandle, Producer

__all__ = ["BatchHandle", "JobHandle", "Producer", "ResultFeed", "ResultListener"]
