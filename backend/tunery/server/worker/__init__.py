"""The job queue and its workers: Celery app and tasks, claim, engine subprocess, relay, reaper.

Importing this package imports neither Celery nor torch; ``queue.enqueue_job`` is the API's entry point.
"""
