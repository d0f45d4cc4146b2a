"""Decoding, sampling and transforms: three separate pieces composed by the dataset."""
