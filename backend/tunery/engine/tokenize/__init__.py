"""Tokenization: label masking, cutoff, packing, and the content-keyed tokenized cache."""
