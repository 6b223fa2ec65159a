"""The web UI through Flask's test client: signing in, CSRF, every page, filters, paging,
the quarantine, a send's parts, a recipient's targets."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlmodel import Session

from receiver import create_app
from receiver.models import Message
from tests.helpers import API_TOKEN, MSGID, bearer, nine_type_batch, post, record

CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(client: FlaskClient, path: str = "/ui/sign-in") -> str:
    """The CSRF token a page's form carries."""
    page = client.get(path)
    found = CSRF.search(page.get_data(as_text=True))
    assert found, page.get_data(as_text=True)[:500]
    return found.group(1)


def sign_in(client: FlaskClient, token: str = API_TOKEN, **extra: str) -> Any:
    """Sign in through the form, as a person does."""
    data = {"csrf_token": csrf_of(client), "token": token, **extra}
    return client.post("/ui/sign-in", data=data)


@pytest.fixture
def ui(client: FlaskClient) -> FlaskClient:
    """A client signed in to the UI."""
    answer = sign_in(client)
    assert answer.status_code == 302 and answer.headers["Location"] == "/ui/"
    return client


def page(client: FlaskClient, path: str, **query: str) -> str:
    """A UI page's HTML; fails on anything but 200."""
    answer = client.get(path, query_string=query or None)
    assert answer.status_code == 200, (path, answer.status_code)
    assert answer.mimetype == "text/html"
    return answer.get_data(as_text=True)


def test_root_redirects_to_the_ui(client: FlaskClient) -> None:
    answer = client.get("/")
    assert answer.status_code == 302 and answer.headers["Location"] == "/ui/"


@pytest.mark.parametrize(
    "path",
    ["/ui/", f"/ui/messages/{MSGID}", "/ui/quarantine", "/ui/sends/x", "/ui/recipients/user1"],
)
def test_every_page_sends_a_stranger_to_sign_in(client: FlaskClient, path: str) -> None:
    answer = client.get(path)
    assert answer.status_code == 302
    assert answer.headers["Location"].startswith("/ui/sign-in?next=")


def test_the_live_fragment_answers_a_stranger_401(client: FlaskClient) -> None:
    assert client.get(f"/ui/messages/{MSGID}/live").status_code == 401


def test_wrong_token_shows_why_and_right_token_signs_in(client: FlaskClient) -> None:
    wrong = sign_in(client, "not-a-token")
    assert wrong.status_code == 401
    assert "not one of the configured API tokens" in wrong.get_data(as_text=True)
    assert client.get("/ui/").status_code == 302
    right = sign_in(client, next="/ui/quarantine")
    assert right.headers["Location"] == "/ui/quarantine"
    assert client.get("/ui/").status_code == 200


def test_sign_in_goes_back_to_pages_of_this_ui_only(client: FlaskClient) -> None:
    for elsewhere in ("https://evil.example/ui/", "//evil.example/ui/", "/api/messages"):
        assert sign_in(client, next=elsewhere).headers["Location"] == "/ui/"


def test_the_session_cookie_is_httponly_lax_and_holds_no_token(client: FlaskClient) -> None:
    answer = sign_in(client)
    cookie = answer.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie and "Secure" not in cookie
    assert API_TOKEN not in cookie
    fresh = client.application.test_client()
    over_https = fresh.get("/ui/sign-in", base_url="https://localhost")
    assert "Secure" in over_https.headers["Set-Cookie"]


def test_a_post_without_its_csrf_token_is_refused(ui: FlaskClient) -> None:
    assert ui.post("/ui/sign-out").status_code == 400
    assert ui.post("/ui/sign-out", data={"csrf_token": "forged"}).status_code == 400
    assert ui.get("/ui/").status_code == 200  # still signed in
    cookieless = ui.application.test_client()
    assert cookieless.post("/ui/sign-in", data={"token": API_TOKEN}).status_code == 400


def test_sign_out_ends_the_session(ui: FlaskClient) -> None:
    token = csrf_of(ui, "/ui/")
    answer = ui.post("/ui/sign-out", data={"csrf_token": token})
    assert answer.status_code == 302 and answer.headers["Location"] == "/ui/sign-in"
    assert ui.get("/ui/").status_code == 302


def test_a_token_removed_from_the_settings_ends_its_sessions(
    env: dict[str, str], ui: FlaskClient
) -> None:
    other = create_app({**env, "API_TOKENS": "another-token"})
    try:
        cookie = ui.get_cookie("umstrack_ui")
        assert cookie is not None
        stranger = other.test_client()
        stranger.set_cookie("umstrack_ui", cookie.value)
        assert stranger.get("/ui/").status_code == 302
    finally:
        other.extensions["umstrack.engine"].dispose()


def test_no_page_holds_the_token(ui: FlaskClient, client: FlaskClient) -> None:
    post(client, nine_type_batch(30))
    for path in ("/ui/", f"/ui/messages/{MSGID}", "/ui/quarantine", "/ui/recipients/user1"):
        assert API_TOKEN not in page(ui, path)


def test_messages_list_filters_and_pages(ui: FlaskClient, client: FlaskClient) -> None:
    for i in range(60):
        post(client, [record(2, msgid=f"v:1t:1p:1n:{i:03d}", params={"order_id": str(i)})])
    html = page(ui, "/ui/")
    assert html.count('class="mini-funnel"') == 50
    older = re.search(r'id="next-page" href="([^"]+)"', html)
    assert older
    second = page(ui, older.group(1).replace("&amp;", "&"))
    assert second.count('class="mini-funnel"') == 10 and 'id="next-page"' not in second
    only = page(ui, "/ui/", param="order_id=7")
    assert "v:1t:1p:1n:007" in only and only.count('class="mini-funnel"') == 1
    assert page(ui, "/ui/", **{"param.order_id": "8"}).count('class="mini-funnel"') == 1
    assert page(ui, "/ui/", status="clicked").count('class="mini-funnel"') == 0


@pytest.mark.parametrize(
    ("query", "reason"),
    [
        ({"status": "arrived"}, "status: unknown status &#39;arrived&#39;"),
        ({"since": "yesterday"}, "since: not an ISO 8601 time"),
        ({"cursor": "garbage"}, "cursor: not a cursor of this service"),
        ({"color": "red"}, "color: unknown parameter"),
    ],
)
def test_a_bad_filter_shows_the_apis_reason(
    ui: FlaskClient, query: dict[str, str], reason: str
) -> None:
    html = page(ui, "/ui/", **query)
    assert 'class="problem"' in html and reason in html
    api = ui.get("/api/messages", query_string=query, headers=bearer())
    assert api.status_code == 400


def test_message_page_shows_funnel_targets_and_timeline(
    ui: FlaskClient, client: FlaskClient
) -> None:
    post(client, [record(0, userid="u1", sender=0), record(2, userid="u1"), record(4, userid="u1")])
    post(client, [record(2, userid="u2"), record(5, userid="u2")])
    html = page(ui, f"/ui/messages/{MSGID}")
    assert 'class="funnel"' in html and 'data-total="2"' in html
    assert 'id="target-total">2<' in html
    assert 'href="/ui/recipients/u1"' in html and "delivery failed" in html
    assert html.count('class="event"') == 5
    assert 'data-live-url="/ui/messages/' in html
    live = page(ui, f"/ui/messages/{MSGID}/live")
    assert 'data-live="funnel"' in live and 'data-live="timeline"' in live
    failed = page(ui, f"/ui/messages/{MSGID}", **{"t.status": "delivery_failed"})
    shown = failed.split('id="target-table"')[1]
    assert 'href="/ui/recipients/u2"' in shown and 'href="/ui/recipients/u1"' not in shown
    bad = page(ui, f"/ui/messages/{MSGID}", **{"t.status": "lost"})
    assert "status: unknown status" in bad


def test_message_page_pages_targets_and_timeline(ui: FlaskClient, client: FlaskClient) -> None:
    post(client, [record(2, userid=f"user{i:03d}", sent_time=1_700_000_000 + i) for i in range(70)])
    html = page(ui, f"/ui/messages/{MSGID}")
    more = re.search(r'id="targets-next" href="([^"]+)"', html)
    later = re.search(r'id="timeline-next" href="([^"]+)"', html)
    assert more and later
    rest = page(ui, more.group(1).replace("&amp;", "&"))
    shown = rest.split('id="target-table"')[1]
    assert "user069" in shown and "user000" not in shown
    events = page(ui, later.group(1).replace("&amp;", "&"))
    assert events.count('class="event"') == 20


def test_unknown_message_is_an_html_404(ui: FlaskClient) -> None:
    answer = ui.get("/ui/messages/v:none")
    assert answer.status_code == 404 and "No message" in answer.get_data(as_text=True)
    assert answer.mimetype == "text/html"


def test_quarantine_counts_reasons_and_filters(ui: FlaskClient, client: FlaskClient) -> None:
    post(client, [record(2, type="x"), record(2, msgid=""), record(2, type="y")])
    post(client, b"{not json")
    html = page(ui, "/ui/quarantine")
    reasons = re.findall(
        r'<td class="num">(\d+)</td>', html.split('id="reasons"')[1].split("</table>")[0]
    )
    assert sum(int(n) for n in reasons) == html.split('id="records"')[1].count("<pre")
    assert len(reasons) >= 2
    first = re.search(r'href="(/ui/quarantine\?reason=[^"]+)"', html)
    assert first
    one = page(ui, first.group(1).replace("&amp;", "&"))
    assert one.split('id="records"')[1].count("<pre") == int(reasons[0])
    assert "before: not a cursor" in page(ui, "/ui/quarantine", before="x")


def test_send_page_lists_parts_with_their_send_facts(app: Flask, ui: FlaskClient) -> None:
    now = datetime.now(UTC)
    with Session(app.extensions["umstrack.engine"]) as session:
        for part in (1, 0):
            session.add(
                Message(
                    msgid=f"v:send:{part}",
                    provider="ums",
                    created_at=now,
                    send_id="send-1",
                    part=part,
                    sent_at=now,
                    send_state="sent",
                    send_code=0,
                    send_message="success",
                )
            )
        session.commit()
    html = page(ui, "/ui/sends/send-1")
    assert html.index("v:send:0") < html.index("v:send:1")
    assert html.count(">sent</span>") == 2 and "success" in html
    assert ui.get("/ui/sends/nothing").status_code == 404


def test_recipient_page_lists_its_targets_on_every_message(
    ui: FlaskClient, client: FlaskClient
) -> None:
    post(client, [record(4, msgid="v:a", userid="ann"), record(5, msgid="v:b", userid="ann")])
    post(client, [record(4, msgid="v:c", userid="bob")])
    html = page(ui, "/ui/recipients/ann")
    assert "v:a" in html and "v:b" in html and "v:c" not in html
    assert html.split('id="recipient-events"')[1].count('class="event"') == 2
    post(client, [record(2, msgid=f"v:m{i:02d}", userid="ann") for i in range(55)])
    first = page(ui, "/ui/recipients/ann")
    older = re.search(r'id="next-page" href="([^"]+)"', first)
    assert older and first.split('id="recipient-events"')[1].count('class="event"') == 50
    rest = page(ui, older.group(1).replace("&amp;", "&"))
    assert rest.split('id="recipient-events"')[1].count('class="event"') == 7
    assert "cursor: not a cursor" in page(ui, "/ui/recipients/ann", cursor="x")
    assert page(ui, f"/ui/recipients/{quote('nobody@example.com')}").count("Nothing is known") == 1


def test_message_page_shows_stages_errors_channels_and_stage_filters(
    ui: FlaskClient, client: FlaskClient
) -> None:
    post(
        client,
        [
            record(2, userid="u1"),
            record(4, userid="u1"),
            record(6, userid="u1"),
            record(2, userid="u2"),
            record(5, userid="u2"),
            record(2, userid="u3", sender=5),
            record(5, userid="u3", sender=5, error={"code": 42, "message": "no phone"}),
        ],
    )
    html = page(ui, f"/ui/messages/{MSGID}")
    funnel = html.split('id="funnel"')[1].split("</section>")[0]
    assert '<tspan class="ok-text">3 ok</tspan>' in funnel  # submission: all three
    assert '<tspan class="failed-text">2 failed</tspan>' in funnel  # delivery
    errors = html.split('id="errors"')[1].split("</section>")[0]
    assert ">42<" in errors and "no phone" in errors and ">3005<" in errors
    channels = html.split('id="channels"')[1].split("</section>")[0]
    assert channels.count('class="mini-funnel"') == 2
    table = html.split('id="target-table"')[1]
    assert "<th>engagement</th>" in table and "clicked" in table

    def shown(**filters: str) -> list[str]:
        html = page(ui, f"/ui/messages/{MSGID}", **{f"t.{k}": v for k, v in filters.items()})
        assert 'class="problem"' not in html, html.split('class="problem"')[1][:200]
        return re.findall(r'<td><a href="/ui/recipients/(\w+)"', html.split('id="target-table"')[1])

    assert shown(has="delivered", lacks="clicked") == []
    assert shown(has="delivered") == ["u1"]
    assert shown(lacks="delivered") == ["u2", "u3"]
    assert shown(error_code="42") == ["u3"]
    assert shown(channel="sms") == ["u3"]
    bad = page(ui, f"/ui/messages/{MSGID}", **{"t.channel": "pigeon"})
    assert "channel: unknown channel" in bad


BROWSER_ACCEPT = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.mark.parametrize(
    ("path", "page_path"),
    [
        ("/api/messages?sendno=a", "/ui/?sendno=a"),
        (f"/api/messages/{MSGID}", f"/ui/messages/{MSGID}"),
        (f"/api/messages/{MSGID}/timeline", f"/ui/messages/{MSGID}"),
        (f"/api/messages/{MSGID}/targets", f"/ui/messages/{MSGID}"),
        ("/api/recipients/a@example.com/events", "/ui/recipients/a@example.com"),
    ],
)
def test_a_browser_opening_a_read_url_is_sent_to_its_page(
    client: FlaskClient, path: str, page_path: str
) -> None:
    answer = client.get(path, headers={"Accept": BROWSER_ACCEPT})
    assert answer.status_code == 303 and answer.headers["Location"] == page_path


@pytest.mark.parametrize(
    "headers",
    [
        {},
        {"Accept": "*/*"},
        {"Accept": "application/json"},
        {"Accept": BROWSER_ACCEPT, **bearer("x")},
    ],
)
def test_other_callers_of_the_api_still_get_401(
    client: FlaskClient, headers: dict[str, str]
) -> None:
    answer = client.get(f"/api/messages/{MSGID}", headers=headers)
    assert answer.status_code == 401 and answer.json["error"] == "unauthorized"
    send = client.post("/api/messages", headers={"Accept": BROWSER_ACCEPT})
    assert send.status_code == 401


def test_the_ui_is_no_part_of_the_api_or_its_document(app: Flask, client: FlaskClient) -> None:
    # Mounted beside the API: its pages are neither API routes nor documented.
    assert not [r.rule for r in app.url_map.iter_rules() if r.rule == "/" or "/ui" in r.rule]
    paths = client.get("/openapi.json").json["paths"]
    assert paths and not [p for p in paths if p == "/" or p.startswith("/ui")]
    stylesheet = client.get("/ui/static/ui.css")  # open: the sign-in page uses it
    stylesheet.close()
    assert stylesheet.status_code == 200
