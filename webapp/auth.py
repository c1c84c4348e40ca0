"""Login, logout, and the checks every request goes through.

Every endpoint needs a signed-in user (session cookie) or an API token
(``Authorization: Bearer <token>``), except the few in
:data:`PUBLIC_ENDPOINTS`. The check runs before every request instead of as a
decorator on each view, so a new route is protected without anyone thinking
of it (a test walks the URL map to prove it). Without credentials the API
answers 401 JSON and pages redirect to the login form.

Every form POST carries a per-session CSRF token in a hidden field (a script
posting JSON sends it in the ``X-CSRF-Token`` header); a POST without the
right token is refused with 400. Requests authenticated by a
bearer token are exempt: browsers never attach that header on their own.

A session cookie holds a fingerprint of the user's password hash and session
epoch (``webapp.security.session_fingerprint``), checked against the user in
the database on every request: signing out raises the epoch, which ends every
session of that user at once (a cookie saved before no longer works, in any
worker), as do a password change and removing the user. Failed sign-ins are
throttled per (user, client address), across workers (``LoginThrottle``).
"""

from __future__ import annotations

import logging
import math

from flask import (
    Blueprint,
    Flask,
    Response,
    current_app,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from flask.sessions import SecureCookieSessionInterface

from overwatch.store.layout import DataDir
from webapp import users
from webapp.context import EXTENSION, overwatch, resources
from webapp.http import json_error, safe_next, wants_json
from webapp.security import (
    LoginThrottle,
    new_csrf_token,
    same_token,
    session_fingerprint,
    token_hash,
    verify_password,
)

log = logging.getLogger(__name__)

bp = Blueprint("auth", __name__)

#: Endpoints anyone may reach: the login form, the health check, static files, the
#: metrics (which check web.metrics_token themselves, see webapp.metrics).
PUBLIC_ENDPOINTS = frozenset({"auth.login", "api.healthz", "static", "metrics.scrape"})
#: Answered without looking the session's user up: a health check must not depend on
#: the database to read a cookie (it reports the database itself), nor a metrics scrape.
ANONYMOUS_ENDPOINTS = frozenset({"api.healthz", "static", "metrics.scrape"})
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
CSRF_HEADER = "X-CSRF-Token"
LOGIN_FAILED = "Invalid user name or password."
TOO_MANY = "Too many failed login attempts for this user from your address."
THROTTLE = "overwatch.login_throttle"
CSRF_FAILED = "The form has expired or did not come from this site. Reload the page and try again."


def csrf_token() -> str:
    """This session's CSRF token (created on first use); templates put it in every form."""
    token = session.get("csrf")
    if not token:
        token = session["csrf"] = new_csrf_token()
    return token


def _bearer_token() -> str | None:
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def unauthorized() -> Response:
    if wants_json():
        response = json_error("authentication required: sign in or send an API token", 401)
        response.headers["WWW-Authenticate"] = 'Bearer realm="overwatch"'
        return response
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


def authenticate() -> Response | None:
    """before_request: find the user from a token or the session; refuse if none."""
    g.user = None
    g.via_token = False
    public = request.endpoint is None or request.endpoint in PUBLIC_ENDPOINTS
    token = _bearer_token()
    if token is not None:
        name = resources().auth.user_for_token_hash(token_hash(token))
        if name is None and not public:
            return json_error("invalid or revoked API token", 401)
        g.user, g.via_token = name, name is not None
    elif "user" in session and request.endpoint not in ANONYMOUS_ENDPOINTS:
        name, fingerprint = session.get("user"), session.get("fp", "")
        if isinstance(name, str) and _session_valid(name, fingerprint):
            g.user = name
        else:  # signed out elsewhere, user removed or password changed since sign-in
            session.pop("user", None)
            session.pop("fp", None)
    if g.user is None and not public:
        return unauthorized()
    return None


def _session_valid(name: str, fingerprint: object) -> bool:
    """Whether a session cookie still stands: the user's password and session epoch match.

    Read through this request's connection rather than a cache with a time to
    live: a sign-out must end the session at once in every worker (ZODB
    invalidates the cached user object when it changes, so this costs no
    storage read while nothing changed).
    """
    user = overwatch().users.get(name)
    if user is None or not isinstance(fingerprint, str):
        return False
    return same_token(session_fingerprint(user.password_hash, user.session_epoch), fingerprint)


def check_csrf() -> Response | None:
    """before_request: every state-changing browser request must echo the session token."""
    if request.method in SAFE_METHODS or g.get("via_token"):
        return None
    # Forms send the token in a hidden field; scripts calling the JSON API, in a header.
    given = request.form.get("csrf_token") or request.headers.get(CSRF_HEADER)
    if same_token(session.get("csrf"), given):
        return None
    log.warning("refused a %s to %s without a valid CSRF token", request.method, request.path)
    if wants_json():
        return json_error(CSRF_FAILED, 400)
    return Response(render_template("error.html", message=CSRF_FAILED, status=400), status=400)


def _login_form(message: str = "", status: int = 200) -> Response:
    html = render_template("login.html", message=message, next=request.values.get("next", ""))
    return Response(html, status=status)


@bp.route("/login", methods=["GET", "POST"])
def login() -> Response:
    if request.method == "GET":
        if g.user is not None:
            return redirect(safe_next(request.args.get("next")))
        return _login_form()
    name = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    address = request.remote_addr or "unknown"
    throttle = throttle_of(current_app)
    wait = throttle.wait(name, address)
    if wait > 0:
        log.warning("login refused for %r from %s: too many failures", name, address)
        seconds = math.ceil(wait)
        response = _login_form(f"{TOO_MANY} Wait {seconds} s, then try again.", 429)
        response.headers["Retry-After"] = str(seconds)
        return response
    user = overwatch().users.get(name) if name else None
    stored_hash = user.password_hash if user is not None else None
    if not verify_password(stored_hash, password):
        throttle.failed(name, address)
        log.info("failed login for %r from %s", name, address)
        return _login_form(LOGIN_FAILED, 401)
    throttle.succeeded(name, address)
    session.clear()
    session.permanent = True
    session["user"] = name
    session["fp"] = session_fingerprint(stored_hash, user.session_epoch)
    session["csrf"] = new_csrf_token()
    log.info("%s signed in from %s", name, address)
    return redirect(safe_next(request.form.get("next")))


@bp.route("/logout", methods=["POST"])
def logout() -> Response:
    """Sign out: every session of the user ends (cookies saved before no longer work)."""
    if g.user is not None and not g.via_token:
        users.end_sessions(resources().db, g.user)
        log.info("%s signed out; their sessions are ended", g.user)
    session.clear()
    return redirect(url_for("auth.login"))


class CookieSessions(SecureCookieSessionInterface):
    """Flask's signed-cookie sessions, minus their cost on requests without a cookie.

    API clients with a token send no cookie; building the signing serializer
    for them would be a measurable part of a cached JSON answer.
    """

    def open_session(self, app, request):
        if request.cookies.get(self.get_cookie_name(app)) is None:
            return self.session_class() if app.secret_key else None
        return super().open_session(app, request)


def throttle_of(app: Flask) -> LoginThrottle:
    """The app's sign-in throttle (one file for every worker of the data directory)."""
    return app.extensions[THROTTLE]


def init_app(app: Flask) -> None:
    res = app.extensions[EXTENSION]
    path = DataDir(res.data_dir).login_throttle_file
    app.extensions[THROTTLE] = LoginThrottle(path, res.settings.web.login_attempts_per_minute)
    app.session_interface = CookieSessions()
    app.before_request(authenticate)
    app.before_request(check_csrf)
    app.add_template_global(csrf_token)
    app.register_blueprint(bp)
