"""Data sets in the thesis' formats, converted to one manifest (`dataset.json`)."""
