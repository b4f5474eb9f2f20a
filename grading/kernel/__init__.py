"""What runs inside the student's (sandboxed) kernel: its set-up, the stand-in checks, and the answering of
the grader's calls on hidden inputs. Nothing here decides a score: the grader checks what comes back."""
