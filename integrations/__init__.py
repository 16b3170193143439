"""One module per platform and courier: signing, parsing into canonical types, clients over injected httpx.

Nothing here touches the database, and nothing imports ``fulfil`` or ``solvers``.
"""
