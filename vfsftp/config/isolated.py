"""Validating a configuration in a child process, so that the process that
serves never loads pydantic (why: vfsftp.config.plain).

``Validation(...)`` starts ``python -m vfsftp.config.isolated`` at once;
``result()`` waits for it and returns the configuration as Sections, or
raises the ConfigError the child's validation raised, its lines unchanged.
The caller may do other work between the two (``vfsftp serve`` imports the
server meanwhile). The child sees the parent's environment (``${NAME}``
substitution), working directory and module path.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import ConfigError

if TYPE_CHECKING:
    from .schema import Config

__all__ = ["Validation"]

#: what precedes the result on the child's stdout: whatever a .pth file or
#: a sitecustomize prints there before it is skipped, not taken for the result
MARKER = b"\0vfsftp-validation\0"

#: seconds a validation may take (one that checks S3 values loads
#: botocore's service model, ~1 s)
TIMEOUT = 120.0


class Validation:
    """The validation of the file ``path`` (relative osfs:// paths start
    next to it), or of ``text`` (``source`` in messages, ``base_dir`` for
    relative paths), with the command line's ``server`` and ``logging``
    overrides applied as ``with_overrides`` applies them."""

    def __init__(
        self,
        path: str | None = None,
        *,
        text: str | None = None,
        source: str = "<text>",
        base_dir: Path | None = None,
        server: dict[str, Any] | None = None,
        logging: dict[str, Any] | None = None,
    ) -> None:
        self.source = path if path is not None else source
        request = {
            "path": path,
            "text": text,
            "source": source,
            "base_dir": None if base_dir is None else str(base_dir),
            "server": server or None,
            "logging": logging or None,
        }
        # The same modules as here, whatever put them on the path (-m from a
        # checkout, PYTHONPATH, a virtual environment's site-packages).
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
        self._proc = subprocess.Popen(
            [sys.executable, "-m", __name__, json.dumps(request)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env=env,
        )

    def result(self) -> Config:
        try:
            out, err = self._proc.communicate(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.communicate()
            raise ConfigError(
                [f"{self.source}: validation did not end within {TIMEOUT:g} s"]
            ) from None
        if self._proc.returncode == 0:
            start = out.rfind(MARKER)
            try:
                if start < 0:
                    raise ValueError("no result")
                verdict, value = pickle.loads(out[start + len(MARKER) :])
            except Exception as exc:
                raise ConfigError([f"{self.source}: unreadable validation result: {exc}"]) from None
            if verdict == "ok":
                config: Config = value
                return config
            raise ConfigError(value)
        tail = err.decode("utf-8", "replace").strip().splitlines()[-1:] or ["(no message)"]
        raise ConfigError(
            [f"{self.source}: validation failed (exit status {self._proc.returncode}): {tail[0]}"]
        )


def _validate(request: dict[str, Any]) -> tuple[str, Any]:
    from .plain import to_plain
    from .schema import config_from_yaml, load_config, with_overrides

    try:
        if request["path"] is not None:
            config = load_config(request["path"])
        else:
            base = request["base_dir"]
            config = config_from_yaml(
                request["text"], request["source"], None if base is None else Path(base)
            )
        config = with_overrides(config, server=request["server"], logging=request["logging"])
    except ConfigError as exc:
        return "error", exc.problems
    return "ok", to_plain(config)


def main() -> None:
    reply = _validate(json.loads(sys.argv[1]))
    sys.stdout.buffer.write(MARKER + pickle.dumps(reply, pickle.HIGHEST_PROTOCOL))


if __name__ == "__main__":
    main()
