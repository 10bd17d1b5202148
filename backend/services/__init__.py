"""The domain, under the routes: runs and their queries, the run lifecycle, studies, comparison and
statistics, the broker and the change feed.

Routes (backend/api/ for REST, backend/web/ for pages) parse a request, call a service and shape the
answer. Services take a database Session (and, where they queue or announce runs, the Dispatcher and the
ChangeFeed), and raise the domain errors of backend/services/errors.py — never an HTTP exception: the
app maps those to status codes in one place (backend/errors.py).
"""
