"""Request and response bodies of the REST API (pydantic models; the OpenAPI schemas come from here)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Generic, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator

from contact_center.routing.presence import AgentState
from crm_core.models import Role
from crm_core.rules.ticket_status import TicketStatus
from crm_core.types import Channel, Direction, Priority

T = TypeVar("T")

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
ShortText = Annotated[str, StringConstraints(strip_whitespace=True, max_length=200)]
Tag = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
PhoneIn = Annotated[str, StringConstraints(max_length=40)]
EmailIn = Annotated[str, StringConstraints(max_length=320)]
Segment = Annotated[str, StringConstraints(strip_whitespace=True, max_length=100)]


TimeZone = Annotated[str, StringConstraints(strip_whitespace=True, max_length=64)]
MAX_ID = 2**63 - 1  # database keys are 64-bit; a larger number is invalid input, not a server error
Id = Annotated[int, Field(ge=1, le=MAX_ID)]


class Input(BaseModel):
    """Request bodies reject unknown fields so a typo is an error, not silently ignored."""

    model_config = ConfigDict(extra="forbid")


def not_null(value: Any) -> Any:
    """For PATCH bodies: a field may be left out, but null would blank a required column."""
    if value is None:
        raise ValueError("may be left out but not null")
    return value


class Output(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class ErrorBody(BaseModel):
    status: int
    code: str
    message: str
    fields: dict[str, str] | None = Field(default=None, description="Per-field messages for invalid input")


class ErrorResponse(BaseModel):
    error: ErrorBody


class PageOut(Output, Generic[T]):
    items: list[T]
    total: int
    limit: int
    offset: int


class PageQuery(Input):
    limit: int | None = Field(default=None, ge=1)
    offset: int = Field(default=0, ge=0, le=MAX_ID)


# --- auth -----------------------------------------------------------------------------------


class LoginIn(Input):
    login: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    password: Annotated[str, StringConstraints(min_length=1, max_length=1024)]


class AgentOut(Output):
    id: int
    login: str
    display_name: str
    email: str | None
    phone: str | None = Field(description="Calls ring this number instead of the browser when set")
    role: Role
    team_id: int | None
    supervisor_id: int | None
    skills: list[str]
    active: bool


class SessionOut(Output):
    agent: AgentOut
    csrf_token: str | None = Field(description="Send as X-CSRF-Token on unsafe requests made with the cookie")


# --- customers ------------------------------------------------------------------------------

Consent = dict[Channel, bool]


class CustomerCreate(Input):
    display_name: Name
    company: ShortText | None = None
    owner_id: Id | None = None
    tags: list[Tag] = Field(default_factory=list, max_length=50)
    segment: Segment | None = None
    timezone: TimeZone | None = None
    preferred_language: Annotated[str, StringConstraints(max_length=16)] | None = None
    consent: Consent = Field(default_factory=dict)
    custom_fields: dict[str, Any] = Field(default_factory=dict, max_length=100)
    phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    emails: list[EmailIn] = Field(default_factory=list, max_length=20)


class CustomerUpdate(Input):
    display_name: Name | None = None
    company: ShortText | None = None
    owner_id: Id | None = None
    tags: list[Tag] | None = Field(default=None, max_length=50)
    segment: Segment | None = None
    timezone: TimeZone | None = None
    preferred_language: Annotated[str, StringConstraints(max_length=16)] | None = None
    consent: Consent | None = None
    custom_fields: dict[str, Any] | None = Field(default=None, max_length=100)
    add_phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    add_emails: list[EmailIn] = Field(default_factory=list, max_length=20)
    remove_phones: list[PhoneIn] = Field(default_factory=list, max_length=20)
    remove_emails: list[EmailIn] = Field(default_factory=list, max_length=20)

    _required = field_validator("display_name", "tags", "consent", "custom_fields")(not_null)


class PhoneOut(Output):
    e164: str
    label: str | None


class EmailOut(Output):
    address: str
    label: str | None


class CustomerOut(Output):
    id: int
    display_name: str
    company: str | None
    owner_id: int | None
    tags: list[str]
    segment: str | None
    timezone: str | None
    preferred_language: str | None
    consent: dict[str, bool]
    custom_fields: dict[str, Any]
    phones: list[PhoneOut]
    emails: list[EmailOut]
    created_at: datetime
    updated_at: datetime


class CustomerPage(PageOut[CustomerOut]):
    pass


class CustomerSearch(PageQuery):
    q: str | None = Field(default=None, max_length=200, description="Name, company, email prefix or phone")
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    owner_id: Id | None = None
    pool: bool | None = Field(default=None, description="true: only unowned customers; false: only owned")


class MergeIn(Input):
    merged_id: Id = Field(description="The customer folded into this one")


class DuplicateOut(Output):
    customer: CustomerOut
    reasons: list[str]
    score: float


class DuplicateList(Output):
    items: list[DuplicateOut]


class ImportReport(Output):
    created: int
    updated: int
    duplicates: int
    rejected: list[dict[str, Any]]


class AuditEntryOut(Output):
    id: int
    action: str
    actor_id: int | None = Field(description="The agent who acted; null for the system (a channel)")
    changes: dict[str, Any] = Field(description="Changed fields as [old, new], or what the action concerned")
    created_at: datetime


class AuditTrail(Output):
    items: list[AuditEntryOut]


# --- interactions ---------------------------------------------------------------------------


class InteractionOut(Output):
    id: int
    channel: Channel
    direction: Direction
    customer_id: int
    agent_id: int | None
    ticket_id: int | None
    external_id: str | None
    status: str
    started_at: datetime
    ended_at: datetime | None
    duration_seconds: int | None
    subject: str | None
    body: str | None
    summary: str | None
    metadata: dict[str, Any] = Field(validation_alias="meta")
    # A call's routing (voice only; null otherwise): how its webhook was answered and to which
    # agent, when it was queued, offered and answered (and by whom), and whether it was missed.
    call_decision: str | None = None
    routed_agent_id: int | None = None
    queued_at: datetime | None = None
    offered_at: datetime | None = None
    answered_at: datetime | None = None
    answered_by_id: int | None = None
    missed: bool = False


class InteractionPage(PageOut[InteractionOut]):
    pass


class TimelineQuery(PageQuery):
    channel: list[Channel] = Field(default_factory=list)


class InteractionQuery(PageQuery):
    channel: Channel | None = None
    customer_id: Id | None = None
    ticket_id: Id | None = None
    agent_id: Id | None = None


# --- tickets --------------------------------------------------------------------------------

Subject = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=300)]


class TicketCreate(Input):
    customer_id: Id
    subject: Subject
    priority: Priority = Priority.NORMAL
    assignee_id: Id | None = None
    team_id: Id | None = None
    source_channel: Channel | None = None


class TicketUpdate(Input):
    subject: Subject | None = None
    priority: Priority | None = None
    status: TicketStatus | None = None
    assignee_id: Id | None = None
    team_id: Id | None = None

    _required = field_validator("subject", "priority", "status")(not_null)


class TransitionIn(Input):
    status: TicketStatus


class AssignIn(Input):
    assignee_id: Id | None


class CommentIn(Input):
    body: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=20000)]
    internal: bool = True


class CommentOut(Output):
    id: int
    ticket_id: int
    author_id: int | None
    body: str
    internal: bool
    created_at: datetime


class CommentList(Output):
    items: list[CommentOut]


class TicketOut(Output):
    id: int
    number: int
    subject: str
    status: TicketStatus
    priority: Priority
    customer_id: int
    assignee_id: int | None
    team_id: int | None
    source_channel: Channel | None
    linked_ticket_id: int | None
    category: str | None
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    first_responded_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    created_at: datetime
    updated_at: datetime


class TicketPage(PageOut[TicketOut]):
    pass


class TicketQuery(PageQuery):
    status: list[TicketStatus] = Field(default_factory=list)
    priority: Priority | None = None
    assignee_id: Id | None = None
    unassigned: bool = False
    mine: bool = False
    team_id: Id | None = None
    customer_id: Id | None = None
    channel: Channel | None = None
    q: str | None = Field(default=None, max_length=200, description="Ticket number or words of the subject")


# --- agents, teams, tokens ------------------------------------------------------------------

Login = Annotated[
    str, StringConstraints(strip_whitespace=True, min_length=2, max_length=100, pattern=r"^[\w.@-]+$")
]


class AgentCreate(Input):
    login: Login
    display_name: Name
    password: Annotated[str, StringConstraints(min_length=10, max_length=1024)]
    role: Role = Role.AGENT
    team_id: Id | None = None
    supervisor_id: Id | None = None
    skills: list[Tag] = Field(default_factory=list, max_length=50)
    email: EmailIn | None = None
    phone: PhoneIn | None = None


class AgentUpdate(Input):
    display_name: Name | None = None
    password: Annotated[str, StringConstraints(min_length=10, max_length=1024)] | None = None
    role: Role | None = None
    team_id: Id | None = None
    supervisor_id: Id | None = None
    skills: list[Tag] | None = Field(default=None, max_length=50)
    email: EmailIn | None = None
    phone: PhoneIn | None = None
    active: bool | None = None

    _required = field_validator("display_name", "password", "role", "skills", "active")(not_null)


class AgentList(Output):
    items: list[AgentOut]


class TeamCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]


class TeamOut(Output):
    id: int
    name: str


class TeamList(Output):
    items: list[TeamOut]


class TokenCreate(Input):
    name: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=100)]
    agent_id: Id = Field(description="The agent whose rights the token carries")


class TokenOut(Output):
    id: int
    name: str
    agent_id: int
    created_by_id: int | None
    created_at: datetime
    last_used_at: datetime | None
    revoked_at: datetime | None


class TokenCreated(TokenOut):
    token: str = Field(description="Shown once; only its hash is stored")


class TokenList(Output):
    items: list[TokenOut]


# --- presence -------------------------------------------------------------------------------


class PresenceIn(Input):
    state: Literal["available", "away", "offline"] = Field(
        description="Ringing, on-call and wrap-up are set by calls; available also ends a wrap-up early"
    )


class PresenceOut(Output):
    agent_id: int
    state: AgentState
    since: datetime = Field(description="When the agent entered this state (the epoch if never seen)")
    until: datetime | None = Field(description="When a wrap-up ends")
    call_sid: str | None = Field(description="The call being offered or taken")
    seconds_in_state: int | None = Field(description="Whole seconds since `since`; null if never seen")


class AgentPresenceOut(PresenceOut):
    login: str
    display_name: str
    team_id: int | None


class PresenceList(Output):
    items: list[AgentPresenceOut]


# --- voice ----------------------------------------------------------------------------------


class VoiceTokenOut(Output):
    token: str = Field(description="A Twilio Voice SDK access token (JWT)")
    identity: str = Field(description="The client identity calls to this agent are dialled to")
    expires_in: int = Field(description="Seconds the token stays valid")


class CallOutcomeIn(Input):
    disposition: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=40)]
    note: Annotated[str, StringConstraints(max_length=20000)] | None = None


class LiveCallOut(Output):
    interaction_id: int
    call_sid: str | None
    customer_id: int
    customer_name: str
    caller: str | None
    status: str
    agent_id: int | None
    started_at: datetime
    seconds: int = Field(description="Seconds since the call arrived")
    queue_position: int | None = Field(description="1 for the caller waiting longest; null when not queued")


class LiveCallList(Output):
    items: list[LiveCallOut]
    queued: int
    longest_wait_seconds: int | None
