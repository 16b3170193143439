"""Courier adapters (produce-back): electronic waybills, pickup bookings and tracking pushes.

:mod:`integrations.couriers.registry` builds an account's signed client (``api_for``), gives a courier's
tracking-push receiver (``receiver_for``) and says which adapter issues a courier's waybills
(``adapter_for``). The interface is in :mod:`integrations.couriers.base`.
"""
