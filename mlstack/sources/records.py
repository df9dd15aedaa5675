"""The records the sources read, in the shapes Slack and GitHub document: Slack's messages,
users and channels (an export's files or the Web API's pages), GitHub's issues and comments (the
REST API or a dump of it).

Only the fields a reader uses are checked, strictly (a number is not a string, a string is not
an id), and anything else a record holds is let through. A record that does not fit is skipped
and named with its field and the rule it broke (`problem`), so one bad record costs that record,
not the read.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from mlstack.sources import Skipped


class Record(BaseModel):
    model_config = ConfigDict(strict=True, extra="allow")


# Slack's message ids are times, "1789380060.000200": seconds (up to 11 digits, year 5138, within
# what datetime reads) and microseconds. "1e300" and "nan" parse as floats and broke the read.
SlackTs = Annotated[str, Field(pattern=r"^\d{1,11}(\.\d{1,9})?$")]
SlackId = Annotated[str, Field(pattern=r"^[A-Z0-9]{1,40}$", description="U0123ABCD, W..., B...")]
# A channel's name is a folder of the export: no path of any other kind.
ChannelName = Annotated[str, Field(pattern=r"^\w[\w-]{0,79}$")]
Url = Annotated[str, Field(pattern=r"^https?://\S+$")]


def _iso_time(value: str) -> str:
    datetime.fromisoformat(value.replace("Z", "+00:00"))  # ValueError: pydantic names the rule
    return value


IsoTime = Annotated[str, AfterValidator(_iso_time)]


class SlackFile(Record):
    title: str | None = None
    name: str | None = None
    permalink: str | None = None
    url_private: str | None = None


class SlackEdited(Record):
    ts: SlackTs
    user: SlackId | None = None


class SlackBot(Record):
    name: str | None = None


class SlackMessage(Record):
    ts: SlackTs
    thread_ts: SlackTs | None = None
    text: str | None = None
    user: SlackId | None = None
    subtype: str | None = None
    bot_id: str | None = None
    username: str | None = None
    bot_profile: SlackBot | None = None
    files: list[SlackFile] | None = None
    edited: SlackEdited | None = None
    message: SlackMessage | None = None  # the new message of a `message_changed` event
    deleted_ts: SlackTs | None = None
    reply_count: int | None = None


class SlackProfile(Record):
    display_name: str | None = None
    real_name: str | None = None


class SlackUser(Record):
    id: SlackId
    name: str | None = None
    real_name: str | None = None
    profile: SlackProfile | None = None


class SlackChannel(Record):
    id: SlackId
    name: ChannelName


class GitHubUser(Record):
    login: str


class GitHubLabel(Record):
    name: str | None = None


class GitHubIssue(Record):
    # Issue numbers are positive and within what JSON readers hold exactly.
    number: int = Field(gt=0, lt=2**53)
    title: str = Field(pattern=r"\S")
    html_url: Url
    updated_at: IsoTime
    created_at: IsoTime | None = None
    body: str | None = None
    user: GitHubUser | None = None  # null for a deleted account ("ghost")
    state: str | None = None
    labels: list[GitHubLabel] = Field(default_factory=list)
    pull_request: dict[str, Any] | None = None
    url: str | None = None  # the key a dump's comments name their issue by
    repository_url: Url | None = None
    comments: int | None = None
    comments_url: Url | None = None


class GitHubComment(Record):
    issue_url: str | None = None  # the API's comments of one issue need none; a dump's do
    body: str | None = None
    user: GitHubUser | None = None
    created_at: IsoTime | None = None


def problem(model: type[Record], record: Any) -> str | None:
    """Why `record` is not a `model`, as `field: rule (value)`; None when it is one."""
    try:
        model.model_validate(record)
    except ValidationError as exc:
        error = exc.errors(include_url=False)[0]
        field = ".".join(str(part) for part in error["loc"])
        if not field:
            return f"not a JSON object ({type(record).__name__})"
        value = "" if error["type"] == "missing" else f" (got {_short(error['input'])})"
        return f"{field}: {error['msg'].removeprefix('Value error, ')}{value}"
    return None


def kept(
    model: type[Record], records: Any, where: Callable[[int], str], skipped: list[Skipped]
) -> list[dict[str, Any]]:
    """The records that fit `model`; each other one skipped, named `where(index)`, with its rule."""
    fitting = []
    for index, record in enumerate(records or []):
        if reason := problem(model, record):
            skipped.append(Skipped(where(index), reason))
        else:
            fitting.append(record)
    return fitting


def _short(value: Any) -> str:
    """The offending value, cut: a record may hold a whole document, or a secret's first bytes."""
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
