"""Trainers for the classifier members, the vote and the segmenter (SPEC sections 2 and 3)."""
