"""The `fswl` command: one module per group of subcommands, each thin over the core."""
