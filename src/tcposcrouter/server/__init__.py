"""The asyncio shells around the core: TCP connections (`tcp`), the running router (`app`)."""
