"""fulfil: the application — domain model, state machines, batching, jobs, API and CLI."""

__version__ = "0.1.0"
