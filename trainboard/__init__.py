"""trainboard: launch, watch and compare PyTorch image-classification runs.

This package holds what both sides share — the run spec, the report records, the settings, the
Celery app and the command line — and imports neither the web stack nor torch at import time.
"""

__version__ = "0.1.0"
