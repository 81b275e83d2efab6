"""Downstream tasks on learned latents: identifiability, classification, OOD detection, attacks."""
