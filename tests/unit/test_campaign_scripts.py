"""A campaign's script filled with the customer's fields, in the sandbox."""

from __future__ import annotations

import pytest

from crm_core.errors import InvalidInput
from crm_core.models import Campaign, Customer
from crm_core.services.campaign_scripts import check_script, render_script


def test_the_script_is_filled_with_the_customers_fields_and_missing_ones_are_empty() -> None:
    campaign = Campaign(
        name="冬季续约",
        caller_id="+15005550006",
        script_template="您好 {{ customer.name }}, {{ agent.name }} from {{ campaign.name }}. "
        "Plan: {{ customer.fields.plan }}; {{ customer.company }}{{ customer.fields.missing }}.",
    )
    customer = Customer(display_name="王芳", company=None, tags=[], custom_fields={"plan": "gold"})
    assert render_script(campaign, customer, "Ada") == "您好 王芳, Ada from 冬季续约. Plan: gold; ."


@pytest.mark.parametrize("source", ["{% if %}", "{{ customer.name ", "{% for x in %}{% endfor %}"])
def test_a_template_that_does_not_compile_is_refused(source: str) -> None:
    with pytest.raises(InvalidInput) as refused:
        check_script(source)
    assert refused.value.field == "script_template"


def test_the_sandbox_refuses_reaching_outside_the_fields() -> None:
    campaign = Campaign(name="x", caller_id="+15005550006", script_template="{{ ''.__class__.__mro__ }}")
    customer = Customer(display_name="Ada", tags=[], custom_fields={})
    with pytest.raises(InvalidInput, match="cannot be shown"):
        render_script(campaign, customer)
