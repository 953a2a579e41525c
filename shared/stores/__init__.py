"""One module per table: every SQL statement that touches a table lives in its module."""
