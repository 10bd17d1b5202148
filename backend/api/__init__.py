"""REST routes: one module per resource. Each route parses the request, calls a service (backend/services/)
and shapes the answer; no route module imports another."""
