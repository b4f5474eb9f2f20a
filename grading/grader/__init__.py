"""What runs in the grader's own processes: settings, the batch runner, the sandbox, normalization, the
integrity scan, the hidden tests' inputs and the class summary. Nothing here runs in a student's kernel."""
