"""The Celery app and its tasks, thin: ``heimdall.localize`` (one job) and
``heimdall.localize_pack`` (several bulk jobs) take a job claim, run the Localizer and publish
(``heimdall.store``)."""
