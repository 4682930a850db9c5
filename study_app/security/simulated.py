"""Simulated participants: the signed header that marks an arrival as one of `advlegit bots`."""
from __future__ import annotations

import base64
import hashlib
import hmac

from flask import abort, current_app, request

SIMULATED_HEADER = "X-Advlegit-Simulated"


def simulated_token_for(secret_key: str, study_id: str) -> str:
    """The token `advlegit bots` sends on arrival so its participants are stored as simulated.

    An HMAC of the study id under the app's SECRET_KEY: the bots command derives it from the same
    secret as the server (or is given it), nothing is stored, and it is sent as a request header, which
    no recruitment link can carry — a person cannot become "simulated" by accident. Knowing it grants
    nothing but labelling one's own answers as simulated (i.e. excluded from the real analysis).
    """
    mac = hmac.new(secret_key.encode(), b"simulated-participant\0" + study_id.encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(mac[:24]).decode()


def arrival_is_simulated(study_id: str) -> bool:
    """True when the arrival carries the study's simulated token; a wrong token is refused (403, nothing
    stored), so bots that were given the wrong secret fail loudly instead of being recorded as people."""
    sent = request.headers.get(SIMULATED_HEADER)
    if sent is None:
        return False
    expected = simulated_token_for(current_app.config["SECRET_KEY"], study_id)
    if not hmac.compare_digest(sent.encode(), expected.encode()):
        abort(403, description=f"The {SIMULATED_HEADER} token is not valid for this study (the bots need the "
                               "server's ADVLEGIT_SECRET_KEY, or the token from `advlegit study bot-token`).")
    return True
