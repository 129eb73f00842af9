"""Data sets: the `Dataset` object, converters from the thesis' formats, synthetic data, checks."""
