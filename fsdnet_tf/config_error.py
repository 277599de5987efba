"""The one error type of configuration checks (its own module so every schema module can raise it)."""


class ConfigError(ValueError):
    """A configuration key is unknown, mistyped or inconsistent."""
