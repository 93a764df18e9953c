"""Producers: replay CSV/JSON Lines into Kafka, and synthetic streams for examples and tests."""
