"""The nbgrader preprocessors of grading, one per job, in the order nbgrader/nbgrader_config.py runs them."""
