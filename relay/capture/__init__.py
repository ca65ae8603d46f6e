"""Capture, then draft: catch real requests for /hooks/<name> before (or while) a mapping
serves it, and draft a mapping from one.

- windows.py: opening and closing windows, and the intake's cache of the open ones;
- samples.py: a request kept as a sample, and a sample replayed through its mapping;
- detect.py: which sender a sample came from (its headers and body);
- draft.py: a commented mapping, with a test, from a sample.
"""
