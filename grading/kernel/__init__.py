"""What runs inside the student's (sandboxed) kernel: its set-up, the runtime integrity guard, the hidden
tests the graded cells call. Nothing here decides anything the grader cannot check from outside."""
