"""Jobs: validation of what callers send, the job service every ingress goes through."""
