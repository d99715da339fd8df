"""HTTP clients for webhook receivers, one per endpoint, authenticated as its settings say:
nothing, a static API-key header, or OAuth 2.0 client credentials (authlib's httpx client: the
token is fetched on first use, cached, and refreshed `refresh_leeway_s` before it expires)."""

from __future__ import annotations

import asyncio

import httpx
from authlib.integrations.httpx_client import AsyncOAuth2Client, OAuthError

from reautod.errors import UnavailableError
from reautod.integrations.credentials import Credentials
from reautod.integrations.settings import ApiKeyAuth, OAuth2Auth, WebhookEndpoint


class Receiver:
    """POSTs to one endpoint with its authentication; `post` raises UnavailableError when an
    OAuth token cannot be had (a transient failure for the caller)."""

    def __init__(self, endpoint: WebhookEndpoint, credentials: Credentials,
                 transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.endpoint = endpoint
        auth = endpoint.auth
        timeout = httpx.Timeout(endpoint.timeout_s)
        self._oauth: AsyncOAuth2Client | None = None
        self._token_lock = asyncio.Lock()
        if isinstance(auth, OAuth2Auth):
            self._oauth = AsyncOAuth2Client(
                client_id=auth.client_id,
                client_secret=credentials.value(auth.client_secret_credential),
                token_endpoint=auth.token_url, grant_type="client_credentials", scope=auth.scope,
                leeway=auth.refresh_leeway_s, timeout=endpoint.timeout_s, transport=transport,
                follow_redirects=False,
            )
            self.client: httpx.AsyncClient = self._oauth
        else:
            headers = ({auth.header: credentials.value(auth.key_credential)}
                       if isinstance(auth, ApiKeyAuth) else {})
            self.client = httpx.AsyncClient(timeout=timeout, transport=transport, headers=headers,
                                            follow_redirects=False)

    async def _ensure_token(self) -> None:
        assert self._oauth is not None
        async with self._token_lock:
            if self._oauth.token is None:
                await self._oauth.fetch_token(grant_type="client_credentials")

    async def post(self, content: bytes, headers: dict[str, str]) -> httpx.Response:
        if self._oauth is None:
            return await self.client.post(self.endpoint.url, content=content, headers=headers)
        try:
            await self._ensure_token()
            response = await self.client.post(self.endpoint.url, content=content, headers=headers)
            if response.status_code == 401:
                # A token the receiver no longer takes (revoked, rotated): fetch one more.
                self._oauth.token = None
                await self._ensure_token()
                response = await self.client.post(self.endpoint.url, content=content,
                                                  headers=headers)
        except OAuthError as err:
            self._oauth.token = None
            raise UnavailableError(f"OAuth token for {self.endpoint.name}: {err}") from err
        return response

    async def aclose(self) -> None:
        await self.client.aclose()
