"""Serving: the censoring pipeline behind `POST /censor`, its image store and its HTTP pieces."""
