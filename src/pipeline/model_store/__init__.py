"""The BentoML model store: profile models in, servable models out, checked both ways.

metadata.py    what is kept with each model (light: no TensorFlow)
files.py       a model as files, probe images and fingerprints
registry.py    register, find, load for serving, verify
preflight.py   the model services' start-up check
imports.py     models trained elsewhere
"""
