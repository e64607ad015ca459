"""Wire the parts together: settings -> CA, real keys, audit -> a listening Proxy."""

from __future__ import annotations

import asyncio
import asyncio.sslproto
import contextlib
import signal
from collections.abc import AsyncIterator

from ..audit import read_key
from . import ca
from .audit import Audit
from .server import Proxy
from .settings import Settings, read_real_keys


@contextlib.asynccontextmanager
async def running(settings: Settings, port: int | None = None) -> AsyncIterator[tuple[Proxy, int]]:
    """Start the proxy; yields (proxy, bound port). Everything is closed on exit.

    Fails before listening if the CA is missing or unsafe or a real key file is unreadable.
    """
    # asyncio's TLS transport (used by the registries' upstream fetches; agent and provider legs
    # run on stream.py) keeps a 256 KiB read buffer per connection; TLS records are at most
    # 16 KiB, so 32 KiB serves as well.
    asyncio.sslproto.SSLProtocol.max_size = settings.tuning.tls_buffer_bytes
    authority = ca.load(settings.ca_dir)
    real_keys = read_real_keys(settings)
    key = read_key(settings.audit_key_file) if settings.audit_key_file else None
    audit = Audit.open(settings.audit_path, key)
    proxy = Proxy(settings, authority, real_keys, audit)
    server = await proxy.start(port=port)
    try:
        yield proxy, server.sockets[0].getsockname()[1]
    finally:
        server.close()
        proxy.close_pools()
        proxy.flush_refusals()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(server.wait_closed(), 5)
        audit.close()


async def serve(settings: Settings) -> None:
    """Serve until SIGTERM/SIGINT."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with running(settings) as (_proxy, port):
        print(
            f"mitm: session {settings.session} listening on {settings.listen_host}:{port}",
            flush=True,
        )
        await stop.wait()
