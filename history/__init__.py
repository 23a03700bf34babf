"""The run history (SQLite store) and the quality gate over it."""
