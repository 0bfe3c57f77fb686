"""The test suite: one folder per package it tests; shared helpers (conftest, imagefolder, pg, synthetic_tables) at this level."""
