"""`python -m local chat`: a conversation with the running platform at a terminal.

Mints a dev token (the local dev issuer over .data/auth, as `python -m local token` does) with the scopes a user
and an operator need, starts a conversation and asks what you type. Each answer is shown with its citations
(document path, title, section or page) and the tools the turn ran. Commands:

  /escalations                          the tenant's open escalations (operator scope `escalations`)
  /resolve <id> approve|reject          resume an escalated turn
  /resolve <id> answer <text>           ... with your answer as the operator
  /new                                  a new conversation
  /help, /quit
"""

from __future__ import annotations

import shlex
import time
from collections.abc import Callable
from typing import Any

SCOPES = ["conversations", "escalations", "search", "documents:read"]
DONE = ("answered", "failed")
POLL_S = 0.5
TIMEOUT_S = 30.0  # one request
WAIT_S = 180.0  # a turn that answered 202: how long to poll it


class ChatClient:
    """The few API calls the chat makes, over a requests-like session (a fake one in tests)."""

    def __init__(self, url: str, token: str, session: Any = None) -> None:
        import requests

        self.url = url.rstrip("/")
        self.session = session or requests.Session()
        self.session.headers.update({"Authorization": f"Bearer {token}"})

    def _call(self, method: str, path: str, body: Any = None) -> Any:
        response = self.session.request(method, f"{self.url}{path}", json=body, timeout=TIMEOUT_S)
        if response.status_code >= 400:
            raise ApiError.of(response)
        return response

    def new_conversation(self) -> str:
        return str(self._call("POST", "/v1/conversations", {"title": "CLI chat"}).json()["id"])

    def ask(self, conversation_id: str, text: str, on_wait: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        response = self._call("POST", f"/v1/conversations/{conversation_id}/messages", {"content": text})
        turn = response.json()
        if response.status_code == 202:
            location = response.headers.get("Location") or f"/v1/conversations/{conversation_id}/turns/{turn['turn']}"
            turn = self.poll(location, on_wait)
        return turn

    def poll(self, location: str, on_wait: Callable[[dict[str, Any]], None]) -> dict[str, Any]:
        """The turn once it is answered or failed; stops at once (with the turn as it is) when it waits on an
        escalation, after telling `on_wait`."""
        path = location.removeprefix(self.url)
        deadline = time.monotonic() + WAIT_S
        while True:
            turn = self._call("GET", path).json()
            if turn.get("status") in DONE:
                return turn
            if turn.get("status") == "waiting":
                on_wait(turn)
                return turn
            if time.monotonic() > deadline:
                return turn
            time.sleep(POLL_S)

    def escalations(self) -> list[dict[str, Any]]:
        return list(self._call("GET", "/v1/escalations").json().get("escalations", []))

    def resolve(self, escalation_id: str, action: str, text: str | None) -> dict[str, Any]:
        body: dict[str, Any] = {"action": action}
        if text:
            body["text"] = text
        return dict(self._call("POST", f"/v1/escalations/{escalation_id}/resolve", body).json())


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    @classmethod
    def of(cls, response: Any) -> ApiError:
        try:
            problem = response.json()
        except ValueError:
            return cls(response.status_code, response.text[:200] or "no details")
        detail = problem.get("detail") or problem.get("title") or "error"
        fields = [
            f"{'.'.join(str(p) for p in e.get('loc', []))}: {e.get('message') or e.get('msg')}"
            for e in problem.get("errors") or []
        ]
        return cls(response.status_code, detail + (f" ({'; '.join(fields)})" if fields else ""))


def format_turn(turn: dict[str, Any]) -> str:
    """The answer, its citations and the tools the turn ran, as the terminal shows them."""
    lines = [turn.get("answer") or f"(no answer: {turn.get('status')})"]
    if turn.get("status") == "failed" and turn.get("failure"):
        lines.append(f"  failed: {turn['failure']}")
    citations = turn.get("citations") or []
    if citations:
        lines.append("Sources:")
        for c in citations:
            where = [c.get("title") or ""]
            if c.get("section"):
                where.append(f"section {c['section']}")
            if c.get("page") is not None:
                where.append(f"p. {c['page']}")
            lines.append(f"  [{c.get('ref')}] {c.get('path')}  {', '.join(w for w in where if w)}")
    runs = turn.get("tool_runs") or []
    if runs:
        tools = []
        for r in runs:
            args = r.get("arguments") or {}
            shown = ", ".join(f"{k}={str(v)[:40]!r}" for k, v in args.items())
            tools.append(f"{r.get('name')}({shown}) -> {r.get('status')}")
        lines.append("Tools: " + "; ".join(tools))
    timing = []
    if turn.get("total_ms") is not None:
        timing.append(f"{turn['total_ms']:.0f} ms")
    if turn.get("model_ms"):
        timing.append(f"model {turn['model_ms']:.0f} ms")
    if timing:
        lines.append(f"({', '.join(timing)})")
    return "\n".join(lines)


def format_escalations(items: list[dict[str, Any]]) -> str:
    if not items:
        return "No open escalations."
    return "\n".join(
        f"  {e['id']}  {e.get('status')}  by {e.get('requested_by')}  {e.get('reason')}: {e.get('question', '')[:60]}"
        + (f"  (tools waiting: {', '.join(e['pending_tools'])})" if e.get("pending_tools") else "")
        for e in items
    )


def run(
    client: ChatClient,
    *,
    read: Callable[[str], str] = input,
    write: Callable[[str], None] = print,
) -> int:
    """The loop: returns 0 on /quit or end of input."""
    conversation = client.new_conversation()
    write(f"Conversation {conversation}. Ask a question; /help for commands.")
    waiting: dict[str, Any] | None = None  # the turn paused on an escalation

    def on_wait(turn: dict[str, Any]) -> None:
        nonlocal waiting
        waiting = turn
        write(f"Waiting for an operator (escalation {turn.get('escalation_id')}): /resolve it or wait.")

    while True:
        try:
            line = read("you> ").strip()
        except (EOFError, KeyboardInterrupt):
            write("")
            return 0
        if not line:
            continue
        try:
            if line in ("/quit", "/exit"):
                return 0
            if line == "/help":
                write(__doc__.split("Commands:", 1)[1].rstrip())
            elif line == "/new":
                conversation = client.new_conversation()
                write(f"Conversation {conversation}.")
            elif line == "/escalations":
                write(format_escalations(client.escalations()))
            elif line.startswith("/resolve"):
                parts = shlex.split(line)
                if len(parts) < 3 or parts[2] not in ("approve", "reject", "answer"):
                    write("usage: /resolve <id> approve|reject|answer <text>")
                    continue
                text = " ".join(parts[3:]) or None
                if parts[2] == "answer" and not text:
                    write("usage: /resolve <id> answer <text>")
                    continue
                closed = client.resolve(parts[1], parts[2], text)
                write(f"Escalation {closed.get('id')} {closed.get('status')}.")
                if waiting is not None and waiting.get("escalation_id") == parts[1]:
                    resumed, waiting = waiting, None
                    location = f"/v1/conversations/{resumed['conversation_id']}/turns/{resumed['turn']}"
                    write(format_turn(client.poll(location, on_wait)))
            elif line.startswith("/"):
                write(f"unknown command {line.split()[0]}; /help lists them")
            else:
                write(format_turn(client.ask(conversation, line, on_wait)))
        except ApiError as exc:
            write(f"error {exc.status}: {exc.message}")
        except OSError as exc:  # the stack is not up, or went away (requests' errors are OSErrors)
            write(f"cannot reach the platform: {exc}")


def main(url: str, tenant: str, user: str) -> int:
    from local.auth import DevIssuer
    from local.runtime import RuntimeSettings

    token = DevIssuer(RuntimeSettings().data_dir / "auth").mint(tenant=tenant, subject=user, scopes=SCOPES)
    return run(ChatClient(url, token))
