"""Integrations with AI app frameworks (each in its own module, importing its framework lazily)."""
