"""Encoders: the extractors that turn item text and images into vectors (sentence encoders,
image backbones, label+OCR descriptions, multi-hot attributes) and where their weights live."""
