"""Who is looking at the dashboard, and what they may see: the in-cluster dashboard's viewers.

Why: in the cluster the dashboard reads as its own ServiceAccount, which may read every
namespace's executions and step logs; whoever reaches its Service would see them all. So each
viewer is identified (`token`: a bearer token, checked with a TokenReview; `proxy`: the user
and groups an authenticating proxy such as oauth2-proxy puts in headers) and every namespace
shown is first asked of the API server for that viewer (a SubjectAccessReview: may this user
list executions there, read pod logs there). The local `jobchain dashboard` runs as its user,
with their kubeconfig, on 127.0.0.1 (`none`): the API server already limits it to them.

Answers are kept for TTL_SECONDS (the clock is passed in, for tests), so a page of a hundred
rows costs one review per namespace, not one per row; a revoked right shows within that time.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from jobchain.api.vocabulary import GROUP

MODES = ("none", "token", "proxy")
TTL_SECONDS = 30.0
CACHE_LIMIT = 10_000  # answers kept at most (the cache is emptied past it: bounded memory)
TOKEN_COOKIE = "jobchain-token"
PROXY_USER = "X-Forwarded-User"
PROXY_GROUPS = "X-Forwarded-Groups"


class Reviews(Protocol):
    def review_token(self, token: str) -> dict[str, Any] | None: ...

    def review_access(self, viewer: dict[str, Any], attributes: dict[str, str]) -> bool: ...


class Unauthenticated(Exception):
    """The request names no viewer the dashboard can trust; the message says what to send."""


@dataclass(frozen=True)
class Viewer:
    user: str
    groups: tuple[str, ...] = ()
    uid: str = ""
    extra: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def as_spec(self) -> dict[str, Any]:
        """The user fields of a SubjectAccessReview's spec."""
        spec: dict[str, Any] = {"user": self.user, "groups": list(self.groups)}
        if self.uid:
            spec["uid"] = self.uid
        if self.extra:
            spec["extra"] = {k: list(v) for k, v in self.extra}
        return spec


class Access:
    """Identifies viewers and answers "may this viewer do that here", both cached for TTL_SECONDS."""

    def __init__(self, reviews: Reviews, mode: str, clock: Callable[[], float] = time.monotonic,
                 ttl: float = TTL_SECONDS) -> None:
        if mode not in MODES:
            raise ValueError(f"viewer authentication {mode!r}: must be one of {', '.join(MODES)}")
        self.reviews = reviews
        self.mode = mode
        self.clock = clock
        self.ttl = ttl
        self._lock = threading.Lock()
        self._tokens: dict[str, tuple[float, Viewer | None]] = {}
        self._answers: dict[tuple[Viewer, tuple[tuple[str, str], ...]], tuple[float, bool]] = {}

    @property
    def enforced(self) -> bool:
        return self.mode != "none"

    def identify(self, headers: Mapping[str, str], cookies: Mapping[str, str]) -> Viewer | None:
        """The viewer of a request (None when not enforced); raises Unauthenticated. Blocking."""
        if self.mode == "none":
            return None
        if self.mode == "proxy":
            user = (headers.get(PROXY_USER) or "").strip()
            if not user:
                raise Unauthenticated(f"no {PROXY_USER} header: reach the dashboard through its authenticating "
                                      "proxy (docs/dashboard.md)")
            groups = tuple(g.strip() for g in (headers.get(PROXY_GROUPS) or "").split(",") if g.strip())
            return Viewer(user, (*groups, "system:authenticated"))
        auth = headers.get("Authorization") or ""
        token = auth[7:].strip() if auth[:7].lower() == "bearer " else (cookies.get(TOKEN_COOKIE) or "").strip()
        if not token:
            raise Unauthenticated("no bearer token: send 'Authorization: Bearer <token>' or paste a token in "
                                  "the page (kubectl create token <serviceaccount>, or your OIDC id token)")
        key = hashlib.sha256(token.encode()).hexdigest()
        now = self.clock()
        with self._lock:
            held = self._tokens.get(key)
        if held is not None and held[0] > now:
            viewer = held[1]
        else:
            viewer = _viewer(self.reviews.review_token(token))
            self._remember(self._tokens, key, (now + self.ttl, viewer))
        if viewer is None:
            raise Unauthenticated("the token was not accepted by the API server (expired, or not a token of "
                                  "this cluster)")
        return viewer

    def may(self, viewer: Viewer | None, verb: str, resource: str, namespace: str = "",
            group: str = GROUP, subresource: str = "") -> bool:
        """Whether the viewer may `verb` `resource` in `namespace` ("" = in all namespaces). Blocking."""
        if viewer is None:
            return True
        attributes = {"verb": verb, "group": group, "resource": resource, "namespace": namespace}
        if subresource:
            attributes["subresource"] = subresource
        key = (viewer, tuple(sorted(attributes.items())))
        now = self.clock()
        with self._lock:
            held = self._answers.get(key)
        if held is not None and held[0] > now:
            return held[1]
        allowed = self.reviews.review_access(viewer.as_spec(), attributes)
        self._remember(self._answers, key, (now + self.ttl, allowed))
        return allowed

    def _remember(self, cache: dict[Any, Any], key: Any, value: Any) -> None:
        with self._lock:
            if len(cache) >= CACHE_LIMIT:
                cache.clear()
            cache[key] = value


def _viewer(user: dict[str, Any] | None) -> Viewer | None:
    if not user or not user.get("username"):
        return None
    extra = tuple(sorted((k, tuple(v or ())) for k, v in (user.get("extra") or {}).items()))
    return Viewer(str(user["username"]), tuple(user.get("groups") or ()), str(user.get("uid") or ""), extra)
