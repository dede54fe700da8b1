"""The rules every piece of text and every id in the contracts follows, so what the gateway accepts the
workflows and Postgres accept too. A check returns what is wrong, or None."""

import re

ID_PATTERN = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
MAX_ID_LENGTH = 64
MAX_TEXT_LENGTH = 200

# (field, what is wrong with it), e.g. ("items[0].qty", "is 0; must be 1 to 50")
Problem = tuple[str, str]


def id_problem(value: str) -> str | None:
    if not value:
        return "is required"
    if len(value) > MAX_ID_LENGTH:
        return f"is {len(value)} characters; at most {MAX_ID_LENGTH}"
    if not ID_PATTERN.fullmatch(value):
        return "may hold only letters, digits and . _ : - (starting with a letter or digit)"
    return None


def text_problem(value: str, required: bool = True, limit: int = MAX_TEXT_LENGTH) -> str | None:
    if required and not value.strip():
        return "is required"
    if len(value) > limit:
        return f"is {len(value)} characters; at most {limit}"
    if "\x00" in value:
        return "holds a NUL character, which Postgres cannot store"
    if value != value.strip():
        return "starts or ends with white space"
    return None
