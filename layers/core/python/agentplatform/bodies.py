"""Field types the API's request bodies share."""

from __future__ import annotations

from typing import Any

from pydantic import BeforeValidator


def _whole_number(value: Any) -> Any:
    # JSON has one number type: to JSON Schema (and to every client that writes 4.0) 4.0 is the integer 4.
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value


# Last in the Annotated metadata of a strict int, `Annotated[int, Field(strict=True, ge=1), WHOLE_NUMBER]`: 4 and 4.0
# are taken; 4.5, "4" and true are still refused, and the schema keeps its integer bounds.
WHOLE_NUMBER = BeforeValidator(_whole_number)

# A text that is not blank, as a `pattern`: one character that is whitespace neither to JSON Schema (ECMA-262 `\s`,
# which counts U+FEFF but not U+0085) nor to pydantic (Rust's Unicode `\s`, the other way round), so a client that
# validates against the OpenAPI document and the API agree on every string.
NOT_BLANK = r"[^\s\u0085\ufeff]"
