"""One module per component config; see the area's config.py."""
