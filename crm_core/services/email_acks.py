"""Automatic acknowledgments: sandboxed Jinja2 templates per mailbox and language."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from functools import lru_cache

from jinja2 import StrictUndefined, Template, TemplateError
from jinja2.sandbox import SandboxedEnvironment

from crm_core.errors import InvalidInput


@dataclass(frozen=True, slots=True)
class AckTemplate:
    subject: str
    body: str


BUILT_IN: Mapping[str, AckTemplate] = {
    "en": AckTemplate(
        subject="We received your request {{ subject_token }}",
        body=(
            "Hello {{ customer_name }},\n\n"
            "thank you for writing to us. Your request is ticket {{ ticket_number }} and we will answer "
            "as soon as we can.\nPlease keep {{ subject_token }} in the subject when you write about it.\n"
        ),
    ),
    "de": AckTemplate(
        subject="Wir haben Ihre Anfrage erhalten {{ subject_token }}",
        body=(
            "Guten Tag {{ customer_name }},\n\n"
            "vielen Dank für Ihre Nachricht. Ihre Anfrage hat die Nummer {{ ticket_number }}; wir antworten "
            "so bald wie möglich.\nBitte lassen Sie {{ subject_token }} im Betreff, "
            "wenn Sie dazu schreiben.\n"
        ),
    ),
    "es": AckTemplate(
        subject="Hemos recibido su solicitud {{ subject_token }}",
        body=(
            "Hola {{ customer_name }}:\n\n"
            "gracias por escribirnos. Su solicitud es el ticket {{ ticket_number }} y le responderemos lo "
            "antes posible.\nConserve {{ subject_token }} en el asunto cuando nos escriba sobre ella.\n"
        ),
    ),
}

_ENV = SandboxedEnvironment(autoescape=False, undefined=StrictUndefined, keep_trailing_newline=True)


@lru_cache(maxsize=256)
def _compiled(source: str) -> Template:
    return _ENV.from_string(source)


def pick_template(
    templates: Mapping[str, AckTemplate], languages: list[str | None], default_language: str
) -> AckTemplate:
    """The first language (customer's, the mail's, the mailbox's) with a template, then English."""
    candidates = [lang.lower() for lang in languages if lang] + [default_language.lower(), "en"]
    for lang in candidates:
        for name in (lang, lang.split("-")[0]):
            if name in templates:
                return templates[name]
            if name in BUILT_IN:
                return BUILT_IN[name]
    return BUILT_IN["en"]


def render(template: AckTemplate, context: Mapping[str, object]) -> tuple[str, str]:
    """Subject and body; a template error (or an attempt to escape the sandbox) is InvalidInput."""
    try:
        subject = _compiled(template.subject).render(**context)
        body = _compiled(template.body).render(**context)
    except TemplateError as exc:
        raise InvalidInput(f"acknowledgment template: {exc}") from exc
    return " ".join(subject.split()), body
