"""Datasets the project can fetch (checksummed) for the main job and benchmarks."""
