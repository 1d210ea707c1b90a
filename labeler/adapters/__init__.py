"""Response shapes the middleware understands: one module per API."""
