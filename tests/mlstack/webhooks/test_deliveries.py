"""Signatures and payloads, without a server: what is accepted, and the status of each refusal."""

from __future__ import annotations

import time

import pytest

from mlstack.webhooks import deliveries
from mlstack.webhooks.deliveries import Delivery, Refused
from tests.mlstack.webhooks.signing import (
    GITHUB_SECRET,
    SLACK_SECRET,
    dumps,
    github_comment,
    github_headers,
    github_issue,
    slack_headers,
    slack_message,
)


def test_a_github_signature_is_checked_over_the_raw_body() -> None:
    body = dumps(github_issue("o/r", 7))
    signature = github_headers(body)["X-Hub-Signature-256"]
    deliveries.verify_github(GITHUB_SECRET, body, signature)  # good: no error
    for tampered, header, why in (
        (body.replace(b"7", b"8"), signature, "does not match"),
        (body, github_headers(body, secret="another")["X-Hub-Signature-256"], "does not match"),
        (body, None, "no X-Hub-Signature-256"),
        (body, signature.replace("sha256=", "sha1="), "does not match"),
    ):
        with pytest.raises(Refused, match=why) as refused:
            deliveries.verify_github(GITHUB_SECRET, tampered, header)
        assert refused.value.status == 401


def test_a_slack_signature_covers_the_timestamp_and_an_old_one_is_a_replay() -> None:
    body = dumps(slack_message("C1", "100.1"))
    now = time.time()
    headers = slack_headers(body)
    deliveries.verify_slack(
        SLACK_SECRET, body, headers["X-Slack-Request-Timestamp"], headers["X-Slack-Signature"], 300, now
    )
    old = slack_headers(body, timestamp=int(now) - 301)
    with pytest.raises(Refused, match="replay"):
        deliveries.verify_slack(
            SLACK_SECRET, body, old["X-Slack-Request-Timestamp"], old["X-Slack-Signature"], 300, now
        )
    # The signature of one moment does not pass with another timestamp.
    with pytest.raises(Refused, match="does not match"):
        deliveries.verify_slack(SLACK_SECRET, body, str(int(now) + 1), headers["X-Slack-Signature"], 300, now)
    with pytest.raises(Refused, match="no X-Slack"):
        deliveries.verify_slack(SLACK_SECRET, body, None, headers["X-Slack-Signature"], 300, now)


def test_an_issue_and_a_comment_become_the_issue_s_document_with_ids_only() -> None:
    found = deliveries.github("issue_comment", "d-1", dumps(github_comment("octo/cat", 12, 99, "deleted")))
    assert isinstance(found, Delivery)
    assert (found.id, found.source, found.document) == ("github:d-1", "github:octo/cat", "github:octo/cat#12")
    assert found.action == "issue_comment.deleted" and found.event == deliveries.GITHUB_EVENT
    assert found.resource[deliveries.SOURCE_LABEL] == "github:octo/cat"
    assert found.payload["comment"] == 99 and found.payload["number"] == 12
    assert "private" not in repr(found) and "a title" not in repr(found)
    issue = deliveries.github("issues", "d-2", dumps(github_issue("octo/cat", 12, "edited")))
    assert isinstance(issue, Delivery) and issue.document == found.document
    assert issue.event_id != found.event_id
    assert issue.event_id == deliveries.github("issues", "d-2", dumps(github_issue("octo/cat", 12))).event_id


def test_ping_and_other_github_events_are_not_acted_on_and_malformed_ones_are_refused() -> None:
    assert deliveries.github("ping", "d", dumps({"zen": "Keep it simple."})) == "ping"
    assert "only issues" in str(deliveries.github("push", "d", dumps({"ref": "main"})))
    for payload, field in (
        ({"action": "opened", "issue": {"number": 1}}, "repository.full_name"),
        ({**github_issue("o/r", 1), "repository": {"full_name": "o/r; DROP"}}, "repository.full_name"),
        ({**github_issue("o/r", 1), "issue": {"number": "1"}}, "issue.number"),
        ({**github_issue("o/r", 1), "issue": {"number": -3}}, "issue.number"),
    ):
        with pytest.raises(Refused, match=field.replace(".", r"\.")) as refused:
            deliveries.github("issues", "d", dumps(payload))
        assert refused.value.status == 400
    with pytest.raises(Refused, match="not JSON"):
        deliveries.github("issues", "d", b"{nope")
    with pytest.raises(Refused, match="X-GitHub-Delivery"):
        deliveries.github("issues", None, dumps(github_issue("o/r", 1)))


def test_a_slack_message_a_reply_an_edit_and_a_deletion_each_touch_their_thread() -> None:
    parent = deliveries.slack(dumps(slack_message("C1", "100.1", event_id="Ev1")))
    reply = deliveries.slack(dumps(slack_message("C1", "101.5", thread_ts="100.1")))
    assert isinstance(parent, Delivery) and isinstance(reply, Delivery)
    assert parent.id == "slack:Ev1" and parent.document == reply.document == "slack:C1:100.1"
    changed = slack_message("C1", "102.0")
    changed["event"] |= {"subtype": "message_changed", "message": {"ts": "101.5", "thread_ts": "100.1"}}
    deleted = slack_message("C1", "103.0")
    deleted["event"] |= {"subtype": "message_deleted", "previous_message": {"ts": "100.1"}}
    for payload, action in ((changed, "message.message_changed"), (deleted, "message.message_deleted")):
        found = deliveries.slack(dumps(payload))
        assert isinstance(found, Delivery) and found.document == "slack:C1:100.1" and found.action == action
    challenge = {"type": "url_verification", "challenge": "c-123"}
    assert deliveries.slack(dumps(challenge)) == {"challenge": "c-123"}
    reaction = {**slack_message("C1", "100.1"), "event": {"type": "reaction_added"}}
    assert "only message" in str(deliveries.slack(dumps(reaction)))
    with pytest.raises(Refused, match="channel") as refused:
        deliveries.slack(dumps(slack_message("c1; drop", "100.1")))
    assert refused.value.status == 400
