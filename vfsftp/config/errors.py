"""The error every source of configuration raises, apart from the models
(importing it loads no validator)."""

from __future__ import annotations

__all__ = ["ConfigError"]


class ConfigError(Exception):
    """The configuration cannot be used.

    ``str(err)`` is the full message, one line per problem, each naming the
    file, the key path and what was expected, e.g.
    ``mounts.yaml: users.demo.perms: unknown permission letter(s) 'x'; ...``.
    ``err.problems`` holds the same lines as a list.
    """

    def __init__(self, problems: list[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))
