"""The cnnstat subcommands: argument parsing and output of each command."""
