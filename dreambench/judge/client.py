"""Transport: one chat-completions request through the ``openai`` library.

The library does the transport retries (its own: 408, 409, 429, 5xx and timeouts, honouring
``Retry-After``, ``max_retries`` times with exponential backoff); the suite adds none. ``OPENAI_BASE_URL``
is read by the library when no endpoint is given. A request that still fails is a
:class:`TransportError` (the call stays unfinished and a rerun asks again); a refusal that no retry can
fix (401, 403, 404: bad key, no such model or endpoint) is a :class:`JudgeAbort` that stops the run.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import DreambenchError

#: Status codes that stop the whole run: every later request would fail the same way.
FATAL_STATUS = (401, 403, 404)
#: The endpoint of the ``openai`` library when neither --base-url nor $OPENAI_BASE_URL is given.
OPENAI_DEFAULT_BASE_URL = "https://api.openai.com/v1"
#: The key sent to an endpoint other than OpenAI's when the key variable is unset (vLLM, Ollama, LM Studio
#: accept any key; the convention of their docs).
NO_KEY = "EMPTY"


class JudgeAbort(DreambenchError):
    """The endpoint refused in a way no retry fixes (bad key, unknown model, wrong URL)."""


class TransportError(Exception):
    """A request that failed after the library's retries (timeouts, 429, 5xx, a 400): one call left
    unfinished."""


@dataclass(frozen=True)
class Answer:
    """The first choice's text, the model the endpoint says answered, and the token counts."""

    content: str | None
    model: str
    prompt_tokens: int
    completion_tokens: int


def resolve_endpoint(base_url: str | None) -> str:
    """The endpoint requests go to: ``base_url``, else ``$OPENAI_BASE_URL``, else OpenAI's."""
    return (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_DEFAULT_BASE_URL).rstrip("/")


def resolve_key(api_key_env: str, endpoint: str) -> str:
    """The API key from ``$<api_key_env>``; unset: an error for OpenAI's endpoint, :data:`NO_KEY` otherwise."""
    key = os.environ.get(api_key_env)
    if key:
        return key
    if endpoint.rstrip("/") == OPENAI_DEFAULT_BASE_URL:
        raise JudgeAbort(f"--api-key-env: ${api_key_env} is not set (the key of {endpoint})")
    return NO_KEY


class JudgeClient:
    """Sends ``messages`` with ``model``, ``temperature`` and a seed, and nothing else (the reference's
    request: ``client.chat.completions.create(messages=..., model=..., temperature=1, seed=...)``)."""

    def __init__(self, endpoint: str, api_key: str, model: str, temperature: float, max_retries: int = 5,
                 timeout_s: float = 120.0):
        from openai import OpenAI  # heavy (pydantic, httpx): only when calls are made

        self.endpoint, self.model = endpoint, model
        # the reference sends ``temperature=1``: an integral value goes out as a JSON integer, as there
        self.temperature = int(temperature) if float(temperature).is_integer() else float(temperature)
        self._client = OpenAI(api_key=api_key, base_url=endpoint, max_retries=max_retries, timeout=timeout_s)

    def complete(self, messages: list[dict], seed: int) -> Answer:
        import openai

        try:
            c = self._client.chat.completions.create(messages=messages, model=self.model,
                                                     temperature=self.temperature, seed=seed)
        except openai.APIStatusError as e:
            if e.status_code in FATAL_STATUS:
                raise JudgeAbort(f"{self.endpoint}: HTTP {e.status_code} for model {self.model!r}: "
                                 f"{_brief(e)}") from None
            raise TransportError(f"HTTP {e.status_code}: {_brief(e)}") from None
        except (openai.APIConnectionError, openai.APIResponseValidationError) as e:  # includes timeouts
            raise TransportError(f"{type(e).__name__}: {e}") from None
        if not getattr(c, "choices", None):
            raise TransportError("the answer has no choices")
        usage = getattr(c, "usage", None)
        return Answer(c.choices[0].message.content, str(getattr(c, "model", "") or ""),
                      int(getattr(usage, "prompt_tokens", 0) or 0), int(getattr(usage, "completion_tokens", 0) or 0))


def _brief(e: Exception) -> str:
    return " ".join(str(getattr(e, "message", e)).split())[:200]
