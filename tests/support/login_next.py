"""The cases of the login page's `next`: where it may go after signing in (a page of this site,
never another one), as the server's rule and the page's script in a browser are both tested."""

from __future__ import annotations

ORIGIN = "http://127.0.0.1:8080"

# `next` as a browser reads it from the query (decoded) -> where the login page may go.
NEXT_VALUES: dict[str, str | None] = {
    "/console": "/console",
    "/tickets?view=unassigned#top": "/tickets?view=unassigned#top",
    "/customers/12": "/customers/12",
    "tickets": "/tickets",
    "/%5Cevil.example/phish": "/%5Cevil.example/phish",  # a literal "%5C" stays in the path
    "/%2F%2Fevil.example": "/%2F%2Fevil.example",
    f"{ORIGIN}/tickets": "/tickets",
    "/\\evil.example/phish": None,
    "/\t/evil.example/phish": None,
    "/\n/evil.example": None,
    "/\\/evil.example": None,
    "\\\\evil.example": None,
    "//evil.example": None,
    "///evil.example": None,
    " //evil.example": None,
    "https://evil.example": None,
    "http://evil.example/console": None,
    "http:///evil.example": None,
    "http:\\\\evil.example": None,
    "https:evil.example": None,
    f"{ORIGIN}@evil.example/": None,
    f"{ORIGIN}//evil.example": None,
    "/.//evil.example": None,
    "//[::1": None,
    "javascript:alert(document.domain)": None,
    "data:text/html,<script>alert(1)</script>": None,
}

# The query strings of the finding, as an attacker writes them in a link.
HOSTILE_QUERIES = [
    "next=/%5Cevil.example/phish",
    "next=/%09/evil.example/phish",
    "next=/%5C/evil.example/phish",
    "next=//evil.example",
    "next=https://evil.example",
    "next=/%2F%2Fevil.example",
    "next=%2F%2Fevil.example",
    "next=%20%2F%2Fevil.example",
    "next=javascript:alert(1)",
]
