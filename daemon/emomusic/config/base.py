"""The base of every settings section: frozen, unknown keys rejected, validated by msgspec.

msgspec rather than pydantic: the settings are the only thing validated, and pydantic's import and
schemas cost the daemon about 18 MB of its resident memory against msgspec's 1 (docs/PERFORMANCE.md).
A section checks what types and ranges cannot say in ``__post_init__`` (a ``ValueError`` whose message
starts with the field's name), and may reshape its raw table first in ``prepare``.
"""

from __future__ import annotations

import difflib
from typing import Annotated, Any

import msgspec
from msgspec import Meta

# What a value is (msgspec's word) in the words of a config file.
KINDS = {
    "int": "integer",
    "float": "number",
    "bool": "boolean",
    "str": "string",
    "array": "list",
    "object": "table",
    "null": "value",
}


def meant(key: str, names: list[str]) -> str:
    """What a misspelt or misplaced key was likely meant to be, or the names there are."""
    close = difflib.get_close_matches(key, names, n=1, cutoff=0.7)
    return f"did you mean {close[0]!r}?" if close else f"expected one of: {', '.join(names)}"


class Section(msgspec.Struct, frozen=True, forbid_unknown_fields=True, kw_only=True):
    @classmethod
    def prepare(cls, raw: Any) -> Any:
        """The raw table before validation (defaults merged into a partial table, a number for a table)."""
        return raw

    def model_copy(self, update: dict[str, Any]) -> Any:
        """A copy with some fields replaced (not validated again: for code, not for a user's input)."""
        return msgspec.structs.replace(self, **update)

    def model_dump(self) -> dict[str, Any]:
        return dict(msgspec.to_builtins(self))


VA = Annotated[tuple[float, float], Meta(description="(valence, arousal), each in [-1, 1]")]
