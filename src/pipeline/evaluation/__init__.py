"""Thesis-style evaluation: tables (SPEC Tables 13, 22, 30, 31), curves and plots, as a report."""
