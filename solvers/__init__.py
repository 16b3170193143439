"""Pure optimisation: plain data in (numpy arrays, frozen dataclasses), a result out.

Nothing here touches a database, Redis or HTTP, and nothing imports ``fulfil`` or ``integrations``.
"""
