"""Celery app and the ``heimdall.localize`` task (thin: fetch, Localizer, publish)."""
