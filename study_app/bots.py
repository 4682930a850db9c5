"""Simulated participants over real HTTP: the same pages and endpoints a browser uses.

The participant API is blind, so a bot recognises the image it was shown by the sha256 of the bytes
it downloaded, looked up in researcher-side data (the stimulus set folder or the study's database rows).
"""
from __future__ import annotations

import hashlib
import html
import logging
import random
import re
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qs, urlsplit

import requests

from advlegit.contracts.stimulus_set import class_names

from .maps import map_entries
from .tasks import task_of

log = logging.getLogger(__name__)
SIMULATED_HEADER = "X-Advlegit-Simulated"  # = security.SIMULATED_HEADER (bots import no Flask)


class BotError(RuntimeError):
    pass


@dataclass
class Oracle:
    """Researcher-side knowledge: image bytes hash -> manifest entry."""

    by_sha: dict[str, dict[str, Any]]
    classes: list[str]
    raters: list[str]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], images: dict[str, bytes]) -> Oracle:
        entries = {e["id"]: e for e in manifest["sources"]} | {e["id"]: e for e in manifest["stimuli"]}
        entries |= map_entries(manifest)  # saliency maps: the entry of the stimulus they explain
        by_sha = {hashlib.sha256(png).hexdigest(): entries[key] for key, png in images.items() if key in entries}
        raters = [m["name"] for m in manifest["models"] if m.get("role") == "rater"]
        return cls(by_sha, class_names(manifest), raters)

    @classmethod
    def from_stimulus_dir(cls, directory: str) -> Oracle:
        from .manifest import load_stimulus_set

        loaded = load_stimulus_set(directory)
        return cls.from_manifest(loaded.manifest, loaded.images)

    @classmethod
    def from_database(cls, study_id: str) -> Oracle:
        """Needs an app context (DATABASE_URL): reads the study's stored manifest and image bytes."""
        from sqlalchemy import select

        from .db import db
        from .models import Image, Study

        study = db.session.get(Study, study_id)
        if study is None:
            raise BotError(f"no study {study_id} in the database")
        images = dict(db.session.execute(select(Image.key, Image.png)
                                         .where(Image.stimulus_set_id == study.stimulus_set_id)).all())
        return cls.from_manifest(study.stimulus_set.manifest, images)

    def entry(self, png: bytes) -> dict[str, Any]:
        e = self.by_sha.get(hashlib.sha256(png).hexdigest())
        if e is None:
            raise BotError("shown an image that is not in the stimulus set")
        return e


@dataclass
class AnswerModel:
    """rater: sample the rater model's probs (with `noise` = chance of a uniform random answer).
    effect: answer the target class with probability effects[defense] (else the true class); a control
    stimulus has no adversarial structure, so this observer names its true class."""

    kind: str = "rater"
    rater: str | None = None
    noise: float = 0.1
    effects: dict[str, float] = field(default_factory=dict)
    fail_attention: float = 0.0  # chance of a careless answer on every trial (tests exclusions)

    def probs(self, e: dict[str, Any], oracle: Oracle) -> list[float]:
        if self.kind == "rater":
            name = self.rater or (oracle.raters[0] if oracle.raters else None)
            if name is None or name not in e["predictions"]:
                raise BotError("no rater model predictions in the manifest; use --model effect")
            return list(e["predictions"][name]["probs"])
        k = len(oracle.classes)
        p = [0.0] * k
        if "defense" in e and e.get("kind", "adversarial") == "adversarial":
            hit = self.effects.get(e["defense"], 0.0)
            p[e["target_label"]] += hit
            p[e["true_label"]] += 1 - hit
        else:
            p[e["true_label"]] = 1.0
        return p

    def answer(self, task: str, entries: list[dict[str, Any]], prompt_label: int | None, oracle: Oracle,
               rng: random.Random) -> str:
        plugin = task_of(task)  # how the task turns an observer's class probabilities into an answer
        careless = rng.random() < self.noise or rng.random() < self.fail_attention
        if careless:
            return plugin.careless_answer(rng)
        return plugin.bot_answer(lambda e: self.probs(e, oracle), entries, prompt_label, rng)


@dataclass
class BotResult:
    token: str
    completion: str  # the Prolific redirect URL or the shown completion code
    answered: int


_CODE = re.compile(r'id="completion-code">([A-Z0-9]+)<')


def _token(url: str) -> str:
    m = re.search(r"/p/([^/]+)/", urlsplit(url).path + "/")
    if not m:
        raise BotError(f"not a participant page: {url}")
    return m.group(1)


_CSRF = re.compile(r'name="csrf" value="([^"]+)"')
_DISPLAY_MIN = re.compile(r'data-min-(refresh-hz|width|height)="([0-9.]+)"')
RETRY_STATUS = {429, 500, 502, 503, 504}


def _send(s: requests.Session, method: str, url: str, retries: int, **kw) -> requests.Response:
    """One request, retried as task.js retries: on a lost connection, 5xx or 429, with the same body
    (for answers: the same UUID, so a retry of a stored answer is acknowledged as a duplicate)."""
    delay = 0.2
    for attempt in range(retries + 1):
        last = attempt == retries
        try:
            r = s.request(method, url, **kw)
        # A worker killed mid-reply cuts the body off (ChunkedEncodingError): a lost connection too.
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            if last:
                raise BotError(f"{method} {url}: {exc}") from exc
        else:
            if r.status_code not in RETRY_STATUS or last:
                if r.status_code >= 400:
                    raise BotError(f"{method} {url}: HTTP {r.status_code}: {r.text[:200]}")
                return r
            if r.status_code == 429:
                delay = max(delay, float(r.headers.get("Retry-After") or 1))
        time.sleep(delay)
        delay = min(delay * 2, 2.0)
    raise AssertionError("unreachable")


def presentation_fields(pres: dict[str, Any], answer: str, hz: float, rng: random.Random) -> dict[str, Any]:
    """Plausible measurements for one answer under the study's [presentation] (what task.js sends):
    an exposure within a frame of the request, now and then a dropped frame or a lost focus."""
    frame = 1000.0 / hz
    out: dict[str, Any] = {"refresh_hz": round(hz, 2), "focus_lost": rng.random() < 0.02}
    if pres.get("exposure_ms"):
        frames = max(1, round(pres["exposure_ms"] / frame))
        dropped = 1 if rng.random() < 0.03 else 0
        out |= {"exposure_ms_requested": pres["exposure_ms"],
                "exposure_ms_measured": round((frames + dropped) * frame, 2),
                "dropped_frames": dropped}
        if pres.get("mask", "none") != "none":
            out["mask_ms_measured"] = round(max(1, round(pres["mask_ms"] / frame)) * frame, 2)
    if pres.get("confidence"):
        out["confidence"] = rng.choice((1, 2, 3, 4)) if rng.random() < 0.3 else rng.choice((3, 4))
    if pres.get("fullscreen"):
        out["fullscreen_exits"] = 1 if rng.random() < 0.01 else 0
    return out


def run_bot(base: str, study_id: str, oracle: Oracle, model: AnswerModel, seed: int,
            platform: str = "prolific", session: requests.Session | None = None,
            image_cache: dict[str, bytes] | None = None, retries: int = 25,
            on_ack: Callable[[str, dict[str, Any]], None] | None = None, *, simulated_token: str) -> BotResult:
    """One participant from the recruitment link to the completion redirect. `image_cache` shared
    between bots skips re-downloading an image another bot already fetched (cheaper load tests).
    Every request is retried (`retries` times, backing off to 2 s) on connection errors, 5xx and 429;
    `on_ack(token, body)` is called for each answer the server acknowledged (201 stored, 200 duplicate).
    `simulated_token` (security.simulated_token_for) is required: every bot is stored as simulated, and
    a server that does not accept the token refuses the bot rather than record it as a person."""
    rng = random.Random(seed)
    s = session or requests.Session()
    base = base.rstrip("/")
    # Answers follow the seed; the platform id and answer UUIDs are new every run (each takes a study once).
    pid = f"bot{seed:x}x{uuid.uuid4().hex[:12]}"
    params = {
        "prolific": {"PROLIFIC_PID": pid, "STUDY_ID": "botstudy", "SESSION_ID": f"s{pid}"},
        "mturk": {"workerId": pid, "assignmentId": f"a{pid}", "hitId": "bothit",
                  "turkSubmitTo": "https://workersandbox.mturk.com"},
        "anonymous": {},
    }[platform]

    def send(method: str, url: str, timeout: float = 30, **kw) -> requests.Response:
        return _send(s, method, url, retries, allow_redirects=False, timeout=timeout, **kw)

    # Redirects are read, not followed: each POST's 303 says where the server moved the participant.
    try:
        r = send("GET", f"{base}/s/{study_id}", params=params, headers={SIMULATED_HEADER: simulated_token})
    except BotError as exc:
        if "HTTP 403" not in str(exc):
            raise
        raise BotError(f"the server refused this bot on arrival (HTTP 403): it does not accept the "
                       f"{SIMULATED_HEADER} token. Run the bots with the server's ADVLEGIT_SECRET_KEY, or pass "
                       f"--simulated-token from `advlegit study bot-token {study_id}` on the server") from exc
    token = _token(r.headers.get("Location", ""))
    p = f"{base}/p/{token}"
    page = send("GET", f"{p}/consent")
    m = _CSRF.search(page.text)
    if not m:
        raise BotError(f"no CSRF token on the consent page: HTTP {page.status_code} {page.text[:200]}")
    csrf = html.unescape(m.group(1))
    r = send("POST", f"{p}/consent", data={"choice": "agree", "csrf": csrf})
    if not r.headers.get("Location", "").endswith("/instructions"):
        raise BotError(f"consent did not lead to the instructions: {r.status_code} {r.headers.get('Location')}")
    # What a browser's instructions page measures (js/display.js): a display that meets the design's minimum.
    page = send("GET", f"{p}/instructions")
    need = {k: float(v) for k, v in _DISPLAY_MIN.findall(page.text)}
    display = {"refresh_hz": f"{max(60.0, need.get('refresh-hz', 0)):.2f}",
               "viewport_width": str(int(max(1440, need.get("width", 0)))),
               "viewport_height": str(int(max(800, need.get("height", 0))))}
    r = send("POST", f"{p}/instructions", data={"csrf": csrf, **display}, timeout=60)
    if not r.headers.get("Location", "").endswith("/task"):
        raise BotError(f"instructions did not lead to the task: {r.status_code} {r.headers.get('Location')}")
    d = send("GET", f"{base}/api/p/{token}/trials").json()
    pres = d.get("presentation") or {}
    hz = max(60.0, float(display["refresh_hz"]))
    measure_rng = random.Random(seed ^ 0x5EED)  # its own stream: a seed gives the same answers as before
    cache: dict[str, bytes] = {} if image_cache is None else image_cache

    def img(url: str) -> dict[str, Any]:
        if url not in cache:
            cache[url] = send("GET", base + url).content
        return oracle.entry(cache[url])

    clock = datetime.now(UTC)
    answered = 0
    for t in d["trials"][d["next_index"]:]:
        entries = [img(t["image"])] + ([img(t["image_b"])] if t["image_b"] else [])
        label = oracle.classes.index(t["label"]) if t["label"] else None
        answer = model.answer(d["task"], entries, label, oracle, rng)
        rt = max(150.0, rng.lognormvariate(7.0, 0.4))
        shown = clock
        clock = clock + timedelta(milliseconds=rt + 300)
        # The UUID names this answer in the database, so it is new every run (a seeded one collides with
        # the last run's: 409 uuid_conflict). The draw stays, so a seed gives the same answers as before.
        rng.getrandbits(128)
        body = {"uuid": str(uuid.uuid4()), "trial_index": t["index"],
                "response": answer, "rt_ms": round(rt, 1),
                "shown_at": shown.isoformat().replace("+00:00", "Z"),
                "answered_at": (shown + timedelta(milliseconds=rt)).isoformat().replace("+00:00", "Z"),
                "screen_width": 1440, "screen_height": 900, "viewport_width": 1440, "viewport_height": 800,
                "device_pixel_ratio": 1} | presentation_fields(pres, answer, hz, measure_rng)
        send("POST", f"{base}/api/p/{token}/responses", json=body, headers={"X-CSRF-Token": d["csrf"]})
        if on_ack:
            on_ack(token, body)
        answered += 1
    state = send("GET", f"{base}/api/p/{token}/state").json()
    if state["state"] != "data_complete":
        raise BotError(f"after the last trial the server says {state}")
    r = send("POST", f"{p}/debrief", data={"q0": "bot", "q1": "", "csrf": csrf})
    if not r.headers.get("Location", "").endswith("/done"):
        raise BotError(f"debrief was not accepted: {r.status_code} {r.text[:200]}")
    r = send("GET", f"{p}/done")
    if platform == "prolific":
        m = re.search(r'id="completion-link" class="btn primary" href="([^"]+)"', r.text)
        loc = html.unescape(m.group(1)) if m else ""
        if "prolific.co" not in loc or not parse_qs(urlsplit(loc).query).get("cc"):
            raise BotError(f"no Prolific completion redirect: {r.status_code} {loc}")
        return BotResult(token, loc, answered)
    m = _CODE.search(r.text)
    return BotResult(token, m.group(1) if m else "mturk-form", answered)


def run_bots(base: str, study_id: str, n: int, oracle: Oracle, model: AnswerModel, *, simulated_token: str,
             seed: int = 0, concurrency: int = 1, platform: str = "prolific", progress=None,
             share_images: bool = False) -> list[BotResult]:
    shared: dict[str, bytes] | None = {} if share_images else None

    def one(i: int) -> BotResult:
        res = run_bot(base, study_id, oracle, model, seed * 1_000_003 + i, platform, image_cache=shared,
                      simulated_token=simulated_token)
        if progress:
            progress()
        return res

    if concurrency <= 1:
        return [one(i) for i in range(n)]
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        return list(pool.map(one, range(n)))
