"""Configuration: one pydantic-settings class, read from ``HEIMDALL_*`` environment variables."""

from heimdall.config.celery import celery_config
from heimdall.config.settings import Settings, get_settings, redacted_url

__all__ = ["Settings", "celery_config", "get_settings", "redacted_url"]
