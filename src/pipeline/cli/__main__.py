"""`python -m pipeline.cli`: what the model services' start-up check runs."""

from pipeline.cli import main

main()
