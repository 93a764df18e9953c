"""Drift: detectors on the prequential error and the actions taken when one fires."""
