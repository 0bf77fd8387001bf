"""One module per schema revision of the run database, named ``<revision>_<what>.py``."""
