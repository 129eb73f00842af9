"""Pixels in and out, shared by serving, training and evaluation: decoding uploads, the
models' input copy, mask post-processing and censoring, encoding, content hashes."""
