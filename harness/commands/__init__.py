"""The `harness` command line: cli.py holds the parser and the dispatch table; one module per command."""
