"""The HTML side: server-rendered pages (Jinja2, autoescaped) over backend/services; live updates come from
the REST side's SSE routes, driven by small JS modules in frontend/static. Page modules never import the
REST routers (backend/api/): both call the same services."""
