"""The training engine (data, models, the loop) and the Celery task that runs it.

Importing this package loads nothing: torch comes in with worker.engine, never FastAPI or the DB layer.
"""
