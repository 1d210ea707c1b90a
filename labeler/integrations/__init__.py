"""Integrations with other tools (gateways, UI frameworks). Each module imports its tool lazily:
nothing here is imported by the core, and the tool is only needed by the module that uses it."""
