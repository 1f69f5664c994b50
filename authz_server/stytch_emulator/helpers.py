"""Emulator-only routes (no Stytch counterpart, no auth), on the emulator's own port.

- ``GET /emulator/outbox?email=…``: what was "emailed" to an address (docs/architecture.md#page-hooks).
- ``GET|POST /emulator/step-up-domains``: make a domain require an email factor.
- ``POST /emulator/reset``: back to the seed (the signing key stays).
- ``GET /emulator/state``: a debugging dump; it leaves out token values.
"""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from . import errors, shapes
from .context import current

bp = Blueprint("stytch_emulator_helpers", __name__)


@bp.get("/")
def index():
    emu = current()
    return jsonify({
        "emulator": "Stytch B2B API (local emulator)",
        "project_id": emu.project_id,
        "public_token": emu.public_token,
        "jwks": f"/v1/b2b/sessions/jwks/{emu.project_id}",
        "helpers": ["/emulator/outbox?email=…", "/emulator/step-up-domains", "/emulator/reset", "/emulator/state"],
    })


@bp.get("/emulator/outbox")
def outbox():
    email = (request.args.get("email") or "").strip().lower()
    if not email:
        raise errors.bad_request("Pass ?email=<address>.")
    store = current().store
    with store.lock:
        messages = [{**m, "sent_at": shapes.iso(m["sent_at"])} for m in store.outbox.get(email, [])]
    codes = [m["code"] for m in messages if m["type"] == "otp"]
    return jsonify({"email": email, "code": codes[-1] if codes else None, "messages": messages})


@bp.route("/emulator/step-up-domains", methods=["GET", "POST"])
def step_up_domains():
    store = current().store
    if request.method == "POST":
        data = request.get_json(silent=True)
        if not isinstance(data, dict) or not isinstance(data.get("domain"), str) or not data["domain"].strip():
            raise errors.bad_request('Send JSON {"domain": "example.test", "required": true|false}.')
        store.set_step_up(data["domain"].strip(), bool(data.get("required", True)))
    with store.lock:
        return jsonify({"step_up_domains": sorted(store.step_up_domains)})


@bp.post("/emulator/reset")
def reset():
    current().store.reset()
    return jsonify({"reset": True})


@bp.get("/emulator/state")
def state():
    store = current().store
    with store.lock:
        now = store.now()
        return jsonify({
            "now": shapes.iso(now),
            "organizations": [shapes.organization(o) for o in store.organizations.values()],
            "members": [shapes.member(m) for m in store.members.values()],
            "sessions": [
                {"member_session_id": s.member_session_id, "member_id": s.member_id,
                 "organization_id": s.organization_id, "expires_at": shapes.iso(s.expires_at),
                 "factors": [f["method"] for f in s.factors]}
                for s in store.sessions.values() if s.expires_at > now
            ],
            "intermediate_sessions": [
                {"email": i.email, "organization_id": i.organization_id, "expires_at": shapes.iso(i.expires_at),
                 "factors": [f["method"] for f in i.factors]}
                for i in store.intermediate_sessions.values() if not i.consumed and i.expires_at > now
            ],
            "step_up_domains": sorted(store.step_up_domains),
        })
