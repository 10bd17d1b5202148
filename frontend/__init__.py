"""Jinja2 templates and static JS/CSS of the dashboard (package data, served by backend.pages)."""
