"""Request and response bodies of the REST API (they make up the OpenAPI schema)."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, Strict, StringConstraints

from haltless.core.models import MachineStatus, Role
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


class LoginRequest(StrictBody):
    email: Annotated[str, StringConstraints(min_length=1, max_length=320), CleanText, CleanTextSchema]
    password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    tenant_id: Annotated[str, StringConstraints(min_length=1, max_length=64), CleanText, CleanTextSchema] | None = (
        Field(
            default=None,
            description="Only needed when the same email and password belong to users of several tenants (409).",
        )
    )


class PasswordChange(StrictBody):
    current_password: Annotated[str, StringConstraints(min_length=1, max_length=256)]
    new_password: Password


class RefreshRequest(StrictBody):
    refresh_token: Annotated[str, StringConstraints(min_length=1, max_length=4096), CleanText, CleanTextSchema]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class Me(BaseModel):
    user_id: str
    tenant_id: str
    email: str
    role: Role


class UserCreate(StrictBody):
    email: Email
    password: Password
    role: Annotated[Role, JsonEnum] = Role.VIEWER


class UserUpdate(StrictBody):
    role: Annotated[Role, JsonEnum] | None = Field(
        default=None, description="A new role; the user's access tokens are refused from now on"
    )
    disabled: bool | None = Field(
        default=None, description="true: no login, every session ends, open dashboards close (4004); false: enable"
    )
    password: Password | None = Field(default=None, description="A new password; every session of the user ends")


class UserOut(BaseModel):
    id: str
    tenant_id: str
    email: str
    role: Role
    disabled: bool
    created_at: str


class ApiKeyCreate(StrictBody):
    name: Name


class ApiKeyOut(BaseModel):
    id: str
    name: str
    prefix: str
    created_at: str
    revoked_at: str | None


class ApiKeyCreated(ApiKeyOut):
    key: str = Field(description="The secret key. It is shown only in this response.")


class MachineCreate(StrictBody):
    name: Name
    location: Location | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] = Field(default_factory=list)


class MachineUpdate(StrictBody):
    name: Name | None = None
    location: Location | None = None
    tags: Annotated[list[Tag], Field(max_length=50)] | None = None
    maintenance: bool | None = Field(
        default=None, description="true puts the machine in maintenance (status `maintenance`, alerts suppressed)"
    )


class MachineOut(BaseModel):
    id: str
    name: str
    location: str | None
    tags: list[str]
    status: MachineStatus
    maintenance: bool
    last_seen_at: str | None
    created_at: str


class MachinePage(BaseModel):
    items: list[MachineOut]
    total: int
    limit: int
    offset: int


class LatestReading(BaseModel):
    metric_name: str
    value: float
    unit: str
    timestamp: str
    received_at: str


class MachineLatest(BaseModel):
    machine_id: str
    readings: list[LatestReading]


class IngestRejection(BaseModel):
    index: int
    detail: str


class IngestResponse(BaseModel):
    accepted: int
    duplicates: int
    rejected: list[IngestRejection]


class CreatedTenant(BaseModel):
    tenant_id: str
    user_id: str
