"""The media relay: signaling protocol, aiortc worker and its clients.

Only ``protocol`` and ``client`` are meant to be imported by the web app at
module level; they need neither asyncio nor aiortc. The worker (``worker``,
``forward``, ``ice``) is imported lazily, where the relay is started.
"""
