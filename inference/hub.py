"""Export folders on the Hugging Face hub: push one, fetch one by ``hf://REPO_ID[@rev]``.

huggingface_hub is imported only here and only when used. Without a network
both directions fail in one line within seconds: the hub's host is probed
with a short TCP timeout first (skipped under ``HF_HUB_OFFLINE=1``, where a
previously downloaded snapshot in the local cache is used).
"""
from __future__ import annotations

import socket
from pathlib import Path
from urllib.parse import urlparse

from utils.checkpoint import CheckpointError

HUB_PREFIX = "hf://"
REACH_TIMEOUT_S = 5.0
EXPORT_FILES = ["model.safetensors", "config.json", "README.md"]


class HubError(CheckpointError):
    """The hub could not be reached or refused the request; the message says what to do."""


def parse_source(source: str) -> tuple[str, str | None]:
    """``hf://owner/name@rev`` -> (``owner/name``, ``rev`` or None)."""
    repo_id, _, revision = source.removeprefix(HUB_PREFIX).partition("@")
    if repo_id.count("/") != 1 or not all(repo_id.split("/")):
        raise HubError(f"{source!r} is not a hub model: write hf://OWNER/NAME or hf://OWNER/NAME@REVISION")
    return repo_id, revision or None


def _offline() -> bool:
    from huggingface_hub import constants

    return constants.is_offline_mode()


DOWNLOAD_ADVICE = "check the network, or copy the export folder here and pass it as --ckpt DIR"
UPLOAD_ADVICE = "check the network (or HF_ENDPOINT), then run export.py --push_to_hub again"


def check_reachable(advice: str = DOWNLOAD_ADVICE, timeout: float = REACH_TIMEOUT_S) -> None:
    """Open (and close) a TCP connection to the hub endpoint, or raise ``HubError`` ending in ``advice``."""
    from huggingface_hub import constants

    url = urlparse(constants.ENDPOINT)
    port = url.port or (443 if url.scheme == "https" else 80)
    try:
        socket.create_connection((url.hostname, port), timeout=timeout).close()
    except OSError as err:
        raise HubError(f"cannot reach the Hugging Face hub at {constants.ENDPOINT} ({err}); {advice}") from None


def download(source: str) -> Path:
    """The local folder of the export at ``source`` (downloaded into the hub cache)."""
    from huggingface_hub import snapshot_download

    repo_id, revision = parse_source(source)
    if not _offline():
        check_reachable()
    try:
        folder = snapshot_download(repo_id, revision=revision, allow_patterns=EXPORT_FILES,
                                   etag_timeout=REACH_TIMEOUT_S)
    except Exception as err:  # the hub client raises many types (HTTP, not found, offline cache miss)
        raise HubError(f"cannot download {source} ({type(err).__name__}: {_first_line(err)}); check the repo id "
                       f"and revision, the network and your token (`hf auth login`)") from None
    return Path(folder)


def push(folder: str | Path, repo_id: str, private: bool = False) -> str:
    """Upload an export folder to the model repo ``repo_id`` (created if
    missing); returns the commit URL."""
    from huggingface_hub import HfApi

    parse_source(repo_id)
    if _offline():
        raise HubError("HF_HUB_OFFLINE is set: unset it to push to the hub")
    check_reachable(UPLOAD_ADVICE)
    api = HfApi()
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        commit = api.upload_folder(folder_path=str(folder), repo_id=repo_id, repo_type="model",
                                   allow_patterns=EXPORT_FILES, commit_message="Upload CAL export")
    except Exception as err:  # HTTP, authentication and connection errors of the hub client
        raise HubError(f"cannot push {folder} to {repo_id} ({type(err).__name__}: {_first_line(err)}); "
                       f"{upload_advice(err, repo_id)}") from None
    return str(getattr(commit, "commit_url", commit))


def upload_advice(err: Exception, repo_id: str) -> str:
    """What to do about a failed upload: log in (no or a read-only token), fix the repo id
    (not found, invalid, not yours), or retry once the network is back."""
    status = getattr(getattr(err, "response", None), "status_code", None)
    kind = type(err).__name__
    if status in (401, 403) or kind == "LocalTokenNotFoundError":
        return (f"log in with `hf auth login` (or set HF_TOKEN) using a token with write access to "
                f"{repo_id.split('/')[0]}")
    if status == 404 or kind in ("RepositoryNotFoundError", "HFValidationError"):
        return (f"check the repo id {repo_id!r}: OWNER must be your user name or an organisation you can "
                f"write to, NAME letters, digits, '-', '_' or '.'")
    if isinstance(err, (OSError, TimeoutError)) or "Connect" in kind or "Timeout" in kind:
        return UPLOAD_ADVICE
    return "check the repo id, your token (`hf auth login`, or HF_TOKEN) and the network, then push again"


def _first_line(err: Exception) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else "no message"
