"""Request and response bodies of the campaign API."""

from __future__ import annotations

from datetime import date, datetime, time
from decimal import Decimal
from typing import Annotated, Any

from pydantic import Field, StringConstraints

from contact_center.api.schemas import Id, Input, Name, Output, PageOut, PageQuery, PhoneIn, TimeZone
from crm_core.models import CampaignMode, CampaignStatus, ContactState, DialOutcome, MachineAction

Code = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=50)]
Share = Annotated[Decimal, Field(ge=0, le=1, max_digits=6, decimal_places=4)]
Price = Annotated[Decimal, Field(ge=0, max_digits=10, decimal_places=4)]
Amount = Annotated[Decimal, Field(ge=0, max_digits=12, decimal_places=2)]


class CampaignFields(Input):
    team_id: Id | None = None
    mode: CampaignMode | None = None
    caller_id: PhoneIn | None = Field(default=None, description="One of the account's numbers")
    script_template: str | None = Field(default=None, max_length=20_000)
    regulatory_profile: str | None = Field(default=None, max_length=20, description="us or uk")
    abandonment_target: Share | None = None
    starts_on: date | None = None
    ends_on: date | None = None
    daily_start: time | None = None
    daily_end: time | None = None
    schedule_timezone: TimeZone | None = None
    machine_action: MachineAction | None = None
    machine_message: str | None = Field(default=None, max_length=2000)
    price_per_minute: Price | None = None


class CampaignCreate(CampaignFields):
    name: Name
    caller_id: PhoneIn = Field(description="One of the account's numbers")


class CampaignUpdate(CampaignFields):
    name: Name | None = None


class CampaignOut(Output):
    id: int
    name: str
    team_id: int | None
    mode: CampaignMode
    caller_id: str
    script_template: str
    regulatory_profile: str
    abandonment_target: Decimal
    starts_on: date | None
    ends_on: date | None
    daily_start: time | None
    daily_end: time | None
    schedule_timezone: str
    status: CampaignStatus
    machine_action: MachineAction
    machine_message: str | None
    price_per_minute: Decimal
    agent_ids: list[int] = Field(default_factory=list)
    team_ids: list[int] = Field(default_factory=list)
    created_at: datetime
    updated_at: datetime


class CampaignList(Output):
    items: list[CampaignOut]


class MembersIn(Input):
    agent_ids: list[Id] = Field(default_factory=list, max_length=1000)
    team_ids: list[Id] = Field(default_factory=list, max_length=100)


class DispositionIn(Input):
    label: Name
    final: bool = False
    callback: bool = False
    do_not_call: bool = False
    converted: bool = False
    value: Amount = Decimal(0)


class DispositionOut(Output):
    code: str
    label: str
    final: bool
    callback: bool
    do_not_call: bool
    converted: bool
    value: Decimal


class DispositionList(Output):
    items: list[DispositionOut]


class RetryRuleIn(Input):
    delay_seconds: int = Field(ge=0, le=90 * 86400)
    max_per_day: int = Field(ge=0, le=1000)
    max_total: int = Field(ge=0, le=10_000)


class RetryRuleOut(Output):
    outcome: DialOutcome
    delay_seconds: int
    max_per_day: int
    max_total: int


class RetryRuleList(Output):
    items: list[RetryRuleOut]


class FromCustomersIn(Input):
    """The customer list's own filters (as ``GET /customers`` takes them)."""

    q: str | None = Field(default=None, max_length=200)
    name: str | None = Field(default=None, max_length=200)
    phone: str | None = Field(default=None, max_length=40)
    email: str | None = Field(default=None, max_length=320)
    owner_id: Id | None = None
    pool: bool | None = None


class FromCampaignIn(Input):
    source_id: Id = Field(description="The campaign whose results are taken")
    dispositions: list[Code] = Field(min_length=1, max_length=50)


class ListLoadOut(Output):
    added: int
    already: int = Field(description="Numbers the campaign already had")
    imported: dict[str, Any] | None = Field(default=None, description="The customer import's report (CSV)")
    missing_lines: list[int] = Field(default_factory=list, description="CSV lines with no number to call")


class ContactQuery(PageQuery):
    state: ContactState | None = None


class ContactOut(Output):
    id: int
    customer_id: int
    e164: str
    state: ContactState
    zone_key: str
    attempts: int
    next_attempt_at: datetime
    last_outcome: DialOutcome | None
    last_disposition: str | None
    callback_at: datetime | None
    callback_agent_id: int | None
    locked_until: datetime | None


class ContactPage(PageOut[ContactOut]):
    pass


class DialableQuery(Input):
    number: PhoneIn
    profile: str = Field(default="us", max_length=20, description="us or uk")


class RefusalOut(Output):
    code: str
    message: str
    details: dict[str, Any]


class DialabilityOut(Output):
    number: str
    dialable: bool
    reasons: list[RefusalOut]
    warnings: list[str]
    next_callable: datetime | None


class DncIn(Input):
    number: PhoneIn


class DncOut(Output):
    id: int
    e164: str
    source: str
    added_at: datetime
    file_date: date | None


class DncPage(PageOut[DncOut]):
    pass


class DncQuery(PageQuery):
    national: bool | None = Field(default=None, description="true: the national list; false: the company's")
    number: PhoneIn | None = None


class DncImportQuery(Input):
    list: str = Field(default="company", pattern="^(company|national)$")
    file_date: date | None = Field(default=None, description="The national file's date (required for it)")


class DncImportOut(Output):
    added: int
    already: int
    rejected: list[dict[str, Any]]
    warnings: list[str]


class AbandonmentOut(Output):
    abandoned: int
    live: int
    rate: float
    limit: float
    predictive_allowed: bool


class CampaignResultsOut(Output):
    dials: int
    live_answers: int
    conversations: int
    abandoned: int
    machines: int
    no_answers: int
    busy: int
    failed: int
    talk_seconds: int
    cost: Decimal
    revenue: Decimal
    roi: Decimal | None = Field(description="(revenue - cost) / cost; null while nothing was spent")
    by_disposition: dict[str, int]
    contacts: int
    contacts_by_state: dict[str, int]
    penetration: float = Field(description="Share of the list done, exhausted or on a do-not-call list")
    abandonment: AbandonmentOut = Field(description="Over the profile's window (US: 30 days, UK: 24 hours)")
