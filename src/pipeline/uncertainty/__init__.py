"""Uncertainty from inference dropout (thesis 5.2.5) and the cascading rule (5.2.6.1), in one room:
`dropout` draws the passes with TensorFlow (evaluation, active learning, the model service);
`served` is what the service sends and summarises (pydantic, no TensorFlow). The rules
themselves (`is_uncertain`, `cascade`) are in `pipeline.metrics`, which training shares."""
