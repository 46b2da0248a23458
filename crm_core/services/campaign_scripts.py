"""A campaign's script: a template the agent reads on the campaign card, filled with the customer's
fields. Templates run in Jinja2's sandbox; a field the customer lacks renders empty."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from crm_core.errors import InvalidInput
from crm_core.models import Campaign, Customer

_ENV = SandboxedEnvironment(autoescape=False, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def check_script(source: str) -> str:
    """``source`` if it is a template that compiles; otherwise InvalidInput naming the problem."""
    try:
        _compiled(source)
    except TemplateError as exc:
        raise InvalidInput(f"the script is not a valid template: {exc}", "script_template") from exc
    return source


def script_context(campaign: Campaign, customer: Customer, agent_name: str | None = None) -> dict[str, Any]:
    return {
        "campaign": {"name": campaign.name, "caller_id": campaign.caller_id},
        "customer": {
            "name": customer.display_name,
            "company": customer.company or "",
            "segment": customer.segment or "",
            "tags": list(customer.tags or []),
            "timezone": customer.timezone or "",
            "language": customer.preferred_language or "",
            "fields": dict(customer.custom_fields or {}),
        },
        "agent": {"name": agent_name or ""},
    }


def render_script(campaign: Campaign, customer: Customer, agent_name: str | None = None) -> str:
    """The campaign's script for ``customer``, e.g. ``Hello {{ customer.name }}, this is
    {{ agent.name }} from {{ campaign.name }}``."""
    try:
        return _compiled(campaign.script_template).render(**script_context(campaign, customer, agent_name))
    except TemplateError as exc:
        raise InvalidInput(f"the script cannot be shown: {exc}", "script_template") from exc
