"""The `ragft` command line: the top layer; nothing imports it."""
