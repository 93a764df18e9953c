"""Checkpoints: their format, the store of generations, the background writer."""
