"""Data sources: the paper's synthetic generator, IDX image sets and users' files."""
