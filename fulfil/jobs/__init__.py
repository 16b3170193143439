"""Background jobs: a transactional outbox drained to rq, the task registry, and the worker.

Jobs carry a task name and ids, never payloads; handlers read what they need from the database, which is the
source of truth, and are idempotent, so a job that runs again after a crash changes nothing twice.
"""
