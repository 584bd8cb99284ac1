"""`gateway audit --url`: what a running deployment shows a stranger.

Bounded: every request has a 5 s deadline, bodies are read to MAX_BODY_BYTES, at most MAX_PAGES front-end
responses are fetched, redirects are not followed. Checks:
- front-end pages (the demo and player pages, what their HTML references on the same site, `--page` paths)
  and the session API's answers carry no configured secret or viewer credential (`gateway.audit.secrets`);
- the session API's Set-Cookie has Secure, HttpOnly, SameSite (and Partitioned where configured), and its
  tokens live as long as the config says;
- `/_gateway/verdict` refuses a peer that is not a trusted proxy (`front_only`);
- error answers are the gateway's JSON shape, with no traceback and no secret.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

import httpx

from gateway.audit.findings import Finding, Status
from gateway.audit.secrets import Secret, leaks, secret_material
from gateway.config import Settings
from gateway.http.verdict import VERDICT_PATH

TIMEOUT_SECONDS = 5.0
MAX_BODY_BYTES = 2 * 1024 * 1024
MAX_PAGES = 24
DEFAULT_PAGES = ("/", "/players/index.html", "/players/plain.html", "/api/demo/catalog", "/.well-known/jwks.json")
_REFERENCE = re.compile(r"""(?:src|href)\s*=\s*["']([^"'#?]+)""", re.IGNORECASE)
_TRACEBACK = ("Traceback (most recent call last)", 'File "', "site-packages", '.py", line')
GARBAGE_TOKEN = "AAAAAAAAAAAAAAAAAAAAAAAA"


class ProbeUnreachable(Exception):
    """The deployment did not answer: nothing can be judged."""


@dataclass(frozen=True, slots=True)
class ProbeOptions:
    base_url: str
    credential: str | None = None  # a viewer's bearer credential, to open sessions
    assets: tuple[str, ...] = ()  # master playlists to open sessions for (a cookie-mode one shows the cookie)
    pages: tuple[str, ...] = ()  # more front-end paths to scan


@dataclass(frozen=True, slots=True)
class Answer:
    url: str
    status: int
    headers: httpx.Headers
    text: str

    def scanned(self) -> str:
        """What a stranger sees of the answer: its headers and body."""
        return "\n".join(f"{name}: {value}" for name, value in self.headers.multi_items()) + "\n" + self.text


class Prober:
    def __init__(self, options: ProbeOptions, transport: httpx.BaseTransport | None = None) -> None:
        self.base = options.base_url.rstrip("/")
        self.client = httpx.Client(timeout=TIMEOUT_SECONDS, follow_redirects=False, transport=transport)

    def request(self, method: str, path: str, **kwargs: object) -> Answer:
        url = path if path.startswith(("http://", "https://")) else self.base + path
        try:
            with self.client.stream(method, url, **kwargs) as response:  # type: ignore[arg-type]
                body = bytearray()
                for chunk in response.iter_bytes():
                    body += chunk[: MAX_BODY_BYTES - len(body)]
                    if len(body) >= MAX_BODY_BYTES:
                        break
        except httpx.TransportError as exc:
            raise ProbeUnreachable(f"{method} {url}: {type(exc).__name__}: {exc}") from exc
        return Answer(url, response.status_code, response.headers, body.decode("utf-8", "replace"))

    def close(self) -> None:
        self.client.close()


def _same_site_references(page: Answer, base: str) -> Iterator[str]:
    if "html" not in page.headers.get("content-type", ""):
        return
    for reference in _REFERENCE.findall(page.text):
        url = urljoin(page.url, reference)
        if urlsplit(url).netloc == urlsplit(base).netloc:
            yield urlsplit(url).path


def front_end_pages(prober: Prober, options: ProbeOptions, material: list[Secret]) -> list[Finding]:
    queue, seen, found = [*DEFAULT_PAGES, *options.pages], set[str](), []
    while queue and len(seen) < MAX_PAGES:
        path = queue.pop(0)
        if path in seen:
            continue
        seen.add(path)
        page = prober.request("GET", path)
        queue.extend(_same_site_references(page, prober.base))
        if named := leaks(page.scanned(), material):
            found.append(
                Finding(
                    "front_end_secrets",
                    Status.FAIL,
                    f"GET {path} ({page.status})",
                    f"carries {', '.join(named)}",
                    f"take {', '.join(named)} out of what {path} serves (viewers log in; pages never hold keys)",
                )
            )
    return found or [
        Finding("front_end_secrets", Status.PASS, "front-end pages", f"{len(seen)} answers carry no secret")
    ]


def _cookie_findings(answer: Answer, settings: Settings, path: str) -> list[Finding]:
    found = []
    for cookie in answer.headers.get_list("set-cookie"):
        name = cookie.split("=", 1)[0]
        attributes = {part.strip().split("=", 1)[0].lower(): part.strip() for part in cookie.split(";")[1:]}
        wanted = {"secure": "Secure", "httponly": "HttpOnly", "samesite": "SameSite"}
        if settings.sessions.cookie_partitioned:
            wanted["partitioned"] = "Partitioned"
        missing = [label for key, label in wanted.items() if key not in attributes]
        if not missing:
            continue
        plain = urlsplit(answer.url).scheme == "http"
        found.append(
            Finding(
                "cookies",
                Status.FAIL,
                f"Set-Cookie {name} from POST {path}",
                f"no {', '.join(missing)}" + (" (served over plain HTTP)" if plain else ""),
                "serve the gateway over HTTPS (the gateway leaves Secure off only for http://localhost and 127.0.0.1)"
                if plain and missing == ["Secure"]
                else "a front that rewrites Set-Cookie must keep Secure, HttpOnly and SameSite",
            )
        )
    return found


def session_api(prober: Prober, settings: Settings, options: ProbeOptions, material: list[Secret]) -> list[Finding]:
    """Open (and refresh) a session per asset: scan the answers, check cookies and the token's lifetime."""
    if not options.credential or not options.assets:
        return []
    own = [secret for secret in material if options.credential not in secret.forms]  # the viewer's own credential
    found: list[Finding] = []
    cookies_seen = 0
    for asset in options.assets:
        auth = {"authorization": f"Bearer {options.credential}"}
        created = prober.request("POST", "/api/sessions", json={"asset": asset}, headers=auth)
        answers = [("/api/sessions", created)]
        if created.status == 201:
            body = json.loads(created.text)
            lifetime = body["expires_at"] - time.time()
            configured = settings.sessions.token_ttl_seconds
            if lifetime > configured + settings.leeway_seconds + 5:
                found.append(
                    Finding(
                        "short_ttls",
                        Status.WARN,
                        f"POST /api/sessions ({asset})",
                        f"the deployment issues tokens living {lifetime:.0f} s; the audited config says {configured} s",
                        "audit the config the deployment runs with ([sessions] token_ttl_seconds)",
                    )
                )
            refresh = prober.request("POST", urlsplit(body["refresh_url"]).path, json={"token": body["token"]})
            answers.append(("/api/sessions/{id}/refresh", refresh))
        else:
            found.append(
                Finding(
                    "front_end_secrets",
                    Status.WARN,
                    f"POST /api/sessions ({asset})",
                    f"{created.status}: no session opened, so its answers were not checked ({created.text[:120]})",
                    "pass --credential and --asset of a viewer entitled to the asset",
                )
            )
        for path, answer in answers:
            cookies_seen += len(answer.headers.get_list("set-cookie"))
            found.extend(_cookie_findings(answer, settings, path))
            if named := leaks(answer.scanned(), own):
                found.append(
                    Finding(
                        "front_end_secrets",
                        Status.FAIL,
                        f"POST {path} ({answer.status})",
                        f"carries {', '.join(named)}",
                        "the session API returns tokens, never keys or other viewers' credentials",
                    )
                )
    if cookies_seen and not any(f.item == "cookies" for f in found):
        found.append(
            Finding("cookies", Status.PASS, "Set-Cookie", f"{cookies_seen} cookies: Secure, HttpOnly, SameSite")
        )
    return found


def verdict_endpoint(prober: Prober) -> list[Finding]:
    answer = prober.request(
        "GET", VERDICT_PATH, headers={"x-original-uri": "/audit-probe/seg.ts", "x-forwarded-for": "203.0.113.7"}
    )
    code = answer.headers.get("x-gateway-error") or answer.headers.get("x-token-denial")
    if answer.status == 403 and code == "front_only":
        return [Finding("front_end_secrets", Status.PASS, f"GET {VERDICT_PATH}", "refused: front_only")]
    return [
        Finding(
            "front_end_secrets",
            Status.FAIL,
            f"GET {VERDICT_PATH}",
            f"answered this peer {answer.status} ({code or 'no error code'}), not 403 front_only",
            "list only the proxies in front of the gateway in [gateway] trusted_proxies (not 0.0.0.0/0 or the "
            "clients' networks); run this audit from outside them",
            "the verdict believes X-Forwarded-For and hands out the origin URL and origin auth header: a client "
            "that may ask it can claim any address and reach the origin",
        )
    ]


def error_bodies(prober: Prober, material: list[Secret]) -> list[Finding]:
    provoked = [
        ("GET", "/audit-probe/master.m3u8", {}),  # no token
        ("GET", f"/audit-probe/master.m3u8?token={GARBAGE_TOKEN}", {}),  # a malformed one
        ("GET", "/audit-probe/%2e%2e/%2e%2e/etc/passwd", {}),  # a path the ACL refuses
        ("POST", "/api/sessions", {"content": b"{", "headers": {"content-type": "application/json"}}),  # bad JSON
        ("DELETE", "/audit-probe/", {}),  # a method no route takes
    ]
    found = []
    for method, target, extra in provoked:
        answer = prober.request(method, target, **extra)
        where = f"{method} {target} ({answer.status})"
        problems = [marker for marker in _TRACEBACK if marker in answer.text]
        problems += leaks(answer.scanned(), material)
        if answer.status >= 500:
            problems.append(f"status {answer.status}")
        if problems:
            found.append(
                Finding(
                    "front_end_secrets",
                    Status.FAIL,
                    f"error answer {where}",
                    f"shows {', '.join(problems)}",
                    "answer errors through gateway.http.errors (JSON error, detail, request_id; tracebacks: log only)",
                )
            )
            continue
        try:
            shape = json.loads(answer.text)
        except json.JSONDecodeError:
            shape = None
        if not isinstance(shape, dict) or not {"error", "detail"} <= shape.keys():
            found.append(
                Finding(
                    "front_end_secrets",
                    Status.WARN,
                    f"error answer {where}",
                    f"not the gateway's JSON error shape: {answer.text[:80]!r}",
                    "check what the front in front of the gateway answers on errors",
                )
            )
    return found or [
        Finding(
            "front_end_secrets",
            Status.PASS,
            "error answers",
            f"{len(provoked)} provoked errors: JSON error/detail/request_id, no traceback, no secret",
        )
    ]


def probe_deployment(
    settings: Settings, options: ProbeOptions, *, transport: httpx.BaseTransport | None = None
) -> list[Finding]:
    """Every probe check against the deployment at `options.base_url`; ProbeUnreachable if it does not answer."""
    material = secret_material(settings)
    prober = Prober(options, transport)
    try:
        return [
            *front_end_pages(prober, options, material),
            *session_api(prober, settings, options, material),
            *verdict_endpoint(prober),
            *error_bodies(prober, material),
        ]
    finally:
        prober.close()
