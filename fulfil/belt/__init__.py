"""The belt generator: a Changshu-like industrial belt (merchants, shops, styles, workshops, shared
warehouses, couriers) and a day of orders, written to the database in bulk. See :mod:`fulfil.belt.generate`.
"""
