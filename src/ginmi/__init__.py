"""ginmi: GIN flows and mutual-information selection of informative latents."""

__version__ = "0.1.0"
