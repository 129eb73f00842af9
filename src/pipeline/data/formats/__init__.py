"""Converters from the thesis' annotation formats to a `Dataset`: VIA projects, class
folders, image and mask pairs."""
