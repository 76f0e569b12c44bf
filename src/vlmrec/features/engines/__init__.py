"""Extraction engines beyond the local one in `features.extraction`: Ray, for many machines."""
