"""The top layer: the `prm` command line, `prm demo` and its report, and the entry point of every
subcommand. It composes everything below it; nothing imports it."""
