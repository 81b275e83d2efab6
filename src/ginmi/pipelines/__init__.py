"""End-to-end commands composed from the library's stages (data -> model -> latents -> scores ->
selection -> tasks -> results -> report). Each command has one config dataclass and one ``run``."""
