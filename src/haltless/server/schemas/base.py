"""The field types and the strict body every request schema is built from."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from haltless.core.names import CLEAN_TEXT_PATTERN, clean_text, stripped_email_pattern, stripped_text_pattern

# Every string a client has stored or looked up: no NUL (PostgreSQL text cannot hold it), no other control
# character. A clear 422 on every backend instead of a 500. (A lone surrogate, which no driver can encode,
# pydantic already refuses in any str field; the rule refuses it too.)
CleanText = AfterValidator(clean_text)
# The rule as the OpenAPI schema states it (validation stays with `CleanText` and the constraints beside it).
CleanTextSchema = Field(json_schema_extra={"pattern": CLEAN_TEXT_PATTERN})


def at_most(length: int) -> BeforeValidator:
    """Refuses a string longer than `length` as sent: the schema's maxLength counts what is sent, before the
    stripping of its ends (else a padded over-long name would be taken, against the schema). Put it after the
    StringConstraints: before them, pydantic drops their min_length."""

    def check(value: object) -> object:
        if isinstance(value, str) and len(value) > length:
            raise ValueError(f"at most {length} characters")
        return value

    return BeforeValidator(check)


# The pattern of a clean text field whose ends are stripped of whitespace (non-blank, or possibly blank).
NonBlankSchema = Field(json_schema_extra={"pattern": stripped_text_pattern(required=True)})
MaybeBlankSchema = Field(json_schema_extra={"pattern": stripped_text_pattern(required=False)})


Email = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$"),
    at_most(320),
    CleanText,
    Field(json_schema_extra={"pattern": stripped_email_pattern()}),
]
Password = Annotated[str, StringConstraints(min_length=8, max_length=256)]
Name = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200), at_most(200), CleanText, NonBlankSchema
]
Tag = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=1, max_length=64), at_most(64), CleanText, NonBlankSchema
]
Location = Annotated[
    str, StringConstraints(strip_whitespace=True, max_length=200), at_most(200), CleanText, MaybeBlankSchema
]


# FastAPI validates a body after parsing its JSON, as Python objects: in strict mode an enum field would then
# want the enum member itself. JSON names a member by its value, so enum fields take that (and nothing else).
JsonEnum = Strict(False)


class StrictBody(BaseModel):
    """A request body: unknown fields refused, and JSON types taken as they are: `"yes"` is not a boolean,
    `"5"` not a number, `5` not a string. A JSON integer is a number (`5` for a float field is 5.0)."""

    model_config = ConfigDict(extra="forbid", strict=True)
