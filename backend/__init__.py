"""The trainboard server: REST API, HTML pages, database, live events and the run state machine.

Never imports torch: the engine lives in worker/ and talks to this side over HTTP only.
"""
