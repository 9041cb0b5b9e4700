"""Commands: the ``cnnstat`` CLI, one module per subcommand.

:mod:`.cli` dispatches and runs the default ``analyze`` command; :mod:`.options` holds the
option parsing every command shares. Commands may import anything below them (timing,
analysis, render, layers, frontends, IR); nothing imports a command.
"""
