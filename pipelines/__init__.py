"""The `midg` command line, one function per DVC stage, and the report."""
